use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use windlass_core::cloud_accounts::{
    CloudAccount, CloudProvider, NewCloudAccount, aws_external_id, aws_role_arn,
};
use windlass_core::store::Store;

use crate::AppState;
use windlass_core::rbac::Permission;

use crate::authz::Authenticated;
use crate::extract::{Json, Path, Query};
use crate::pagination::{Page, PageQuery};
use crate::problem::Problem;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_cloud_account, list_cloud_accounts))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCloudAccount {
    provider: CloudProvider,
    /// Azure tenant (directory) id. Required for Azure, absent for AWS.
    #[serde(default)]
    tenant_id: Option<String>,
    /// Azure subscription id or 12-digit AWS account id.
    external_id: String,
    display_name: String,
}

fn validate(request: &CreateCloudAccount) -> Result<(), Problem> {
    request
        .provider
        .check_account_ids(request.tenant_id.as_deref(), &request.external_id)
        .map_err(Problem::unprocessable)?;
    let name = request.display_name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(Problem::unprocessable("display_name: 1 to 100 characters"));
    }
    Ok(())
}

#[utoipa::path(post, path = "/v1/organizations/{organization_id}/cloud-accounts",
    tag = "cloud accounts", params(("organization_id" = Uuid, Path)),
    request_body = CreateCloudAccount,
    responses((status = CREATED, body = CloudAccount), (status = NOT_FOUND, body = Problem),
        (status = CONFLICT, body = Problem), (status = UNPROCESSABLE_ENTITY, body = Problem)))]
async fn create_cloud_account(
    State(state): State<AppState>,
    Path(organization_id): Path<Uuid>,
    authn: Authenticated,
    Json(request): Json<CreateCloudAccount>,
) -> Result<(StatusCode, axum::Json<CloudAccount>), Problem> {
    let caller = authn
        .authorize(&state, organization_id, Permission::CloudAccountsWrite)
        .await?;
    let details = serde_json::json!({"provider": request.provider.as_str()});
    let new = match prepare(&state, organization_id, request).await {
        Ok(new) => new,
        Err(problem) => {
            return caller
                .refused(
                    &state,
                    Some(organization_id),
                    "cloud_accounts.create",
                    "cloud_account".to_owned(),
                    details,
                    problem,
                )
                .await;
        }
    };
    let created = caller
        .audited(
            &state,
            Some(organization_id),
            "cloud_accounts.create",
            |created: Option<&CloudAccount>| match created {
                Some(account) => format!("cloud_account:{}", account.id),
                None => "cloud_account".to_owned(),
            },
            details,
            move |conn| Box::pin(Store::create_cloud_account_on(conn, new)),
        )
        .await;
    Ok((StatusCode::CREATED, axum::Json(created?)))
}

/// The account a request registers, checked: well-formed, and not proven by another
/// organisation.
async fn prepare(
    state: &AppState,
    organization_id: Uuid,
    request: CreateCloudAccount,
) -> Result<NewCloudAccount, Problem> {
    validate(&request)?;
    let tenant_id = request.tenant_id.unwrap_or_default().to_lowercase();
    let external_id = request.external_id.to_lowercase();
    // Another organisation proved it controls this account: registering it here could
    // only serve to act on someone else's cloud. Who holds it is not said.
    if state
        .store
        .cloud_account_claimed_elsewhere(
            organization_id,
            request.provider,
            &tenant_id,
            &external_id,
        )
        .await?
    {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "cloud-account-claimed",
            format!(
                "this {} account is already verified by another organization; if it is yours, \
                 contact support to transfer it",
                request.provider.as_str()
            ),
        ));
    }
    Ok(NewCloudAccount {
        organization_id,
        provider: request.provider,
        tenant_id,
        external_id,
        display_name: request.display_name.trim().to_owned(),
    })
}

/// Cluster, maintenance and teardown runs act in a customer's cloud with Windlass's own
/// authority (its multi-tenant application on Azure, its AWS principal on AWS); they start
/// only once the organisation has proven it controls the account. The problem says which
/// run proves it.
pub(crate) fn require_verified(account: &CloudAccount) -> Result<(), Problem> {
    if account.is_verified() {
        return Ok(());
    }
    let how = match account.provider {
        CloudProvider::Azure => "run azure_access_setup for it first (a successful setup proves \
             your organization controls the subscription)"
            .to_owned(),
        CloudProvider::Aws => format!(
            "run aws_access_verify for it first (Windlass assumes {} with your \
             organization's ExternalId {}; success proves your organization controls the \
             account)",
            aws_role_arn(&account.external_id),
            aws_external_id(account.organization_id)
        ),
    };
    Err(Problem::new(
        StatusCode::CONFLICT,
        "cloud-account-unverified",
        format!("cloud account {} is not verified: {how}", account.id),
    ))
}

#[utoipa::path(get, path = "/v1/organizations/{organization_id}/cloud-accounts",
    tag = "cloud accounts", params(PageQuery, ("organization_id" = Uuid, Path)),
    responses((status = OK, body = Vec<CloudAccount>, headers(("Windlass-Next-Cursor" = String, description = "`after` of the next page, when there may be one"))), (status = NOT_FOUND, body = Problem)))]
async fn list_cloud_accounts(
    State(state): State<AppState>,
    Path(organization_id): Path<Uuid>,
    authn: Authenticated,
    Query(page): Query<PageQuery>,
) -> Result<Page<CloudAccount>, Problem> {
    authn
        .authorize(&state, organization_id, Permission::CloudAccountsRead)
        .await?;
    Page::cut(
        state.store.cloud_accounts(organization_id).await?,
        &page,
        |x| format!("{}|{}", windlass_core::clock::to_db(x.created_at), x.id),
    )
}
