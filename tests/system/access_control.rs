//! Who may call what. Every route but the health checks and the OpenAPI document needs a
//! caller; each built-in and scoped custom role gets exactly what the RBAC matrix says on
//! every route; API tokens act only in their organisation; refusals are audited.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;
use windlass_api::oidc::pseudonymous_subject;
use windlass_core::audit::Environment;
use windlass_core::rbac::{self, BuiltInRole, Grant, Permission, Role, Scope, Target};

use crate::support::{Stack, setup_request};

const PUBLIC: [&str; 2] = ["/healthz", "/readyz"];

#[tokio::test]
async fn every_documented_route_refuses_a_caller_without_a_valid_token() {
    let stack = Stack::without_worker().await;
    let (org, _) = stack.organization_with_azure_account().await;
    let anonymous = stack.api.with_token(None);
    let forged = stack.api.with_token(Some(
        "eyJhbGciOiJFUzI1NiIsImtpZCI6InN0YW5kaW4tMSJ9.eyJzdWIiOiJtYWxsb3J5In0.c2lnbmF0dXJl".into(),
    ));
    let made_up_token = stack
        .api
        .with_token(Some(format!("wlt_{}_00", Uuid::new_v4().simple())));
    let document = serde_json::to_value(windlass_api::openapi_document()).unwrap();
    let mut checked = 0;
    for (template, operations) in document["paths"].as_object().unwrap() {
        if PUBLIC.contains(&template.as_str()) {
            continue;
        }
        let path = template
            .replace("{organization_id}", &org.to_string())
            .replace("{run_id}", &Uuid::new_v4().to_string())
            .replace("{project_id}", &Uuid::new_v4().to_string())
            .replace("{environment_id}", &Uuid::new_v4().to_string());
        for method in operations.as_object().unwrap().keys() {
            let method: Method = method.to_uppercase().parse().unwrap();
            for (who, api) in [
                ("anonymous", &anonymous),
                ("forged", &forged),
                ("made-up", &made_up_token),
            ] {
                let (status, _, body) = api
                    .raw(
                        method.clone(),
                        &path,
                        Some("application/json"),
                        b"{}".to_vec(),
                    )
                    .await;
                // 422 would mean the body was judged before the caller: never for a route
                // whose JSON is valid; here `{}` is invalid, so only 401 is acceptable.
                assert_eq!(
                    status,
                    StatusCode::UNAUTHORIZED,
                    "{who} {method} {template}: {body:#}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 9, "only {checked} routes checked");
}

/// The routes of an organisation, the permission each needs, and on what.
fn routes(org: Uuid, account: Uuid) -> Vec<(Method, String, Option<Value>, Permission, Target)> {
    let base = format!("/v1/organizations/{org}");
    let organization_routes = vec![
        (
            Method::GET,
            base.clone(),
            None,
            Permission::OrganizationRead,
        ),
        (
            Method::GET,
            format!("{base}/cloud-accounts"),
            None,
            Permission::CloudAccountsRead,
        ),
        (
            Method::POST,
            format!("{base}/cloud-accounts"),
            Some(json!({"provider": "azure", "tenant_id": Uuid::new_v4(),
                        "external_id": Uuid::new_v4(), "display_name": "matrix"})),
            Permission::CloudAccountsWrite,
        ),
        (
            Method::GET,
            format!("{base}/runs"),
            None,
            Permission::RunsRead,
        ),
        (
            Method::POST,
            format!("{base}/runs"),
            Some(setup_request(account)),
            Permission::RunsStart,
        ),
        (
            Method::GET,
            format!("{base}/runs/{}", Uuid::new_v4()),
            None,
            Permission::RunsRead,
        ),
        (
            Method::GET,
            format!("{base}/runs/{}/log?step=terraform-apply", Uuid::new_v4()),
            None,
            Permission::RunsRead,
        ),
        (
            Method::GET,
            format!("{base}/runs/{}/events", Uuid::new_v4()),
            None,
            Permission::RunsRead,
        ),
        (
            Method::POST,
            format!("{base}/runs/{}/cancel", Uuid::new_v4()),
            Some(json!({})),
            Permission::RunsCancel,
        ),
        (
            Method::GET,
            format!("{base}/audit"),
            None,
            Permission::AuditRead,
        ),
        (
            Method::POST,
            format!("{base}/role-bindings"),
            Some(
                json!({"subject": "user:0123456789abcdef", "role": {"type": "built_in", "role": "viewer"}}),
            ),
            Permission::MembersManage,
        ),
        (
            Method::POST,
            format!("{base}/group-mappings"),
            Some(json!({"idp_group": "readers", "role": {"type": "built_in", "role": "viewer"}})),
            Permission::MembersManage,
        ),
        (
            Method::POST,
            format!("{base}/api-tokens"),
            Some(json!({"name": format!("ci-{}", Uuid::new_v4()),
                        "role": {"type": "built_in", "role": "viewer"}, "expires_in_days": 30})),
            Permission::MembersManage,
        ),
        (
            Method::POST,
            format!("{base}/api-tokens/{}/revoke", Uuid::new_v4()),
            None,
            Permission::MembersManage,
        ),
        (
            Method::GET,
            format!("{base}/clusters"),
            None,
            Permission::ClustersRead,
        ),
        (
            Method::GET,
            format!("{base}/maintenance-schedules"),
            None,
            Permission::ClustersRead,
        ),
        (
            Method::POST,
            format!("{base}/clusters"),
            Some(
                json!({"name": format!("m{}", &Uuid::new_v4().simple().to_string()[..8]),
                        "cloud_account_id": account, "region": "westeurope",
                        "kubernetes_version": "1.33", "dry_run": true}),
            ),
            Permission::ClustersWrite,
        ),
        (
            Method::GET,
            format!("{base}/placements"),
            None,
            Permission::ClustersRead,
        ),
        (
            Method::POST,
            format!("{base}/placements"),
            Some(json!({"name": format!("m{}", &Uuid::new_v4().simple().to_string()[..8])})),
            Permission::ClustersWrite,
        ),
        (
            Method::GET,
            format!("{base}/projects"),
            None,
            Permission::ProjectsRead,
        ),
        (
            Method::POST,
            format!("{base}/projects"),
            Some(json!({"name": format!("m{}", &Uuid::new_v4().simple().to_string()[..8])})),
            Permission::ProjectsWrite,
        ),
        (
            Method::GET,
            format!("{base}/projects/{}/environments", Uuid::new_v4()),
            None,
            Permission::ProjectsRead,
        ),
        (
            Method::GET,
            format!("{base}/secrets"),
            None,
            Permission::ProjectsRead,
        ),
        (
            Method::POST,
            format!("{base}/secrets"),
            Some(json!({"name": "matrix/value", "value": "not-a-real-secret"})),
            Permission::SecretsWrite,
        ),
        // Environments that do not exist: allowed callers get 404, the others 403.
        (
            Method::GET,
            format!("{base}/environments/{}", Uuid::new_v4()),
            None,
            Permission::ProjectsRead,
        ),
        (
            Method::GET,
            format!("{base}/environments/{}/deployments", Uuid::new_v4()),
            None,
            Permission::ProjectsRead,
        ),
        (
            Method::POST,
            format!("{base}/environments/{}/deployments", Uuid::new_v4()),
            Some(json!({})),
            Permission::EnvironmentsDeploy,
        ),
        (
            Method::PUT,
            format!("{base}/environments/{}/services", Uuid::new_v4()),
            Some(json!([])),
            Permission::ProjectsWrite,
        ),
        (
            Method::POST,
            format!("{base}/environments/{}/webhook-secret", Uuid::new_v4()),
            None,
            Permission::ProjectsWrite,
        ),
    ];
    // A cluster that does not exist: allowed callers get 404, the others 403.
    let cluster = Uuid::new_v4();
    let on_cluster = Target::cluster(cluster);
    let cluster_path = format!("{base}/clusters/{cluster}");
    let cluster_routes = vec![
        (
            Method::GET,
            cluster_path.clone(),
            None,
            Permission::ClustersRead,
        ),
        (
            Method::GET,
            format!("{cluster_path}/blueprint"),
            None,
            Permission::ClustersRead,
        ),
        (
            Method::GET,
            format!("{cluster_path}/maintenance"),
            None,
            Permission::ClustersRead,
        ),
        (
            Method::DELETE,
            cluster_path.clone(),
            None,
            Permission::ClustersWrite,
        ),
        (
            Method::POST,
            format!("{cluster_path}/upgrade"),
            Some(json!({"kubernetes_version": "1.34"})),
            Permission::ClustersWrite,
        ),
        (
            Method::POST,
            format!("{cluster_path}/maintenance/pause"),
            Some(json!({"note": "matrix"})),
            Permission::ClustersWrite,
        ),
        (
            Method::POST,
            format!("{cluster_path}/maintenance/trigger"),
            None,
            Permission::ClustersWrite,
        ),
    ];
    // A new environment names its project, type and cluster: grants on any of them count.
    let (project, cluster_for_env) = (Uuid::new_v4(), Uuid::new_v4());
    let new_environment = (
        Method::POST,
        format!("{base}/projects/{project}/environments"),
        Some(json!({"name": "prod", "type": "production", "cluster_id": cluster_for_env})),
        Permission::ProjectsWrite,
        Target::environment(
            project,
            windlass_core::audit::Environment::Production,
            cluster_for_env,
        ),
    );
    organization_routes
        .into_iter()
        .map(|(m, p, b, permission)| (m, p, b, permission, Target::default()))
        .chain(std::iter::once(new_environment))
        .chain(
            cluster_routes
                .into_iter()
                .map(|(m, p, b, permission)| (m, p, b, permission, on_cluster)),
        )
        .collect()
}

fn every_permission_at(scope: Scope) -> Vec<Grant> {
    Permission::ALL
        .into_iter()
        .map(|permission| Grant {
            permission,
            scope: scope.clone(),
        })
        .collect()
}

#[tokio::test]
async fn each_role_gets_exactly_its_permissions_on_every_route() {
    let stack = Stack::without_worker().await;
    let (org, account) = stack.organization_with_azure_account().await;
    let mut roles: Vec<(String, Role)> = BuiltInRole::ALL
        .into_iter()
        .map(|role| (format!("{role:?}"), Role::BuiltIn { role }))
        .collect();
    // Scoped custom roles: everything, but only on clusters (so the cluster routes and
    // none of the organisation-level ones) / on production environments.
    roles.push((
        "all-clusters".into(),
        Role::Custom {
            name: "all clusters".into(),
            grants: every_permission_at(Scope::AllClusters),
        },
    ));
    roles.push((
        "production-only".into(),
        Role::Custom {
            name: "production".into(),
            grants: every_permission_at(Scope::EnvironmentType {
                environment: Environment::Production,
            }),
        },
    ));
    roles.push((
        "run-reader".into(),
        Role::Custom {
            name: "run reader".into(),
            grants: vec![Grant {
                permission: Permission::RunsRead,
                scope: Scope::Organization,
            }],
        },
    ));

    let mut denied = 0;
    for (name, role) in &roles {
        let subject = format!("member-{name}");
        stack
            .store
            .bind_role(
                org,
                &pseudonymous_subject(&stack.idp.issuer, &subject),
                role,
            )
            .await
            .unwrap();
        let api = stack
            .api
            .with_token(Some(stack.idp.token(&subject, &[], 600)));
        for (method, path, body, permission, target) in routes(org, account) {
            let expected = rbac::allows(std::slice::from_ref(role), permission, &target);
            let body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
            let (status, _, problem) = api
                .raw(method.clone(), &path, Some("application/json"), body)
                .await;
            if expected {
                assert_ne!(
                    status,
                    StatusCode::FORBIDDEN,
                    "{name} {method} {path}: {problem:#}"
                );
                assert_ne!(status, StatusCode::UNAUTHORIZED, "{name} {method} {path}");
            } else {
                assert_eq!(
                    status,
                    StatusCode::FORBIDDEN,
                    "{name} {method} {path}: {problem:#}"
                );
                denied += 1;
            }
        }
    }
    assert!(denied > 20, "the matrix denies something: {denied}");

    // Roles also come from IdP groups.
    stack
        .store
        .map_group_to_role(
            org,
            "auditors",
            &Role::BuiltIn {
                role: BuiltInRole::Admin,
            },
        )
        .await
        .unwrap();
    let auditor = stack
        .api
        .with_token(Some(stack.idp.token("someone", &["auditors"], 600)));
    let (status, trail) = auditor
        .get(&format!(
            "/v1/organizations/{org}/audit?action=authz.denied&limit=1000"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{trail:#}");
    // Every refusal of a member is in the organisation's audit trail.
    assert_eq!(trail.as_array().unwrap().len(), denied, "{trail:#}");
    let stranger = stack
        .api
        .with_token(Some(stack.idp.token("stranger", &["other-group"], 600)));
    assert_eq!(
        stranger
            .get(&format!("/v1/organizations/{org}/runs"))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn an_admin_issues_and_revokes_tokens_through_the_api() {
    let stack = Stack::without_worker().await;
    let (org, _) = stack.organization_with_azure_account().await;
    let (status, _, issued) = stack
        .api
        .post(
            &format!("/v1/organizations/{org}/api-tokens"),
            json!({"name": "pipeline", "role": {"type": "built_in", "role": "dev_ops"}, "expires_in_days": 7}),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{issued:#}");
    let secret = issued["secret"].as_str().unwrap().to_owned();
    let pipeline = stack.api.with_token(Some(secret.clone()));
    assert_eq!(
        pipeline
            .get(&format!("/v1/organizations/{org}/runs"))
            .await
            .0,
        StatusCode::OK
    );
    let revoke = format!(
        "/v1/organizations/{org}/api-tokens/{}/revoke",
        issued["id"].as_str().unwrap()
    );
    let (status, _, _) = stack.api.post(&revoke, Value::Null, &[]).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        pipeline
            .get(&format!("/v1/organizations/{org}/runs"))
            .await
            .0,
        StatusCode::UNAUTHORIZED,
        "a revoked token stops working at once"
    );
    let (_, trail) = stack
        .api
        .get(&format!("/v1/organizations/{org}/audit"))
        .await;
    let text = trail.to_string();
    assert!(text.contains("access.issue_api_token") && text.contains("access.revoke_api_token"));
    assert!(!text.contains(&secret), "the secret is never audited");
}

#[tokio::test]
async fn api_tokens_act_only_in_their_organization_and_with_their_role() {
    let stack = Stack::without_worker().await;
    let (org, account) = stack.organization_with_azure_account().await;
    let (other_org, _) = stack.organization_with_azure_account().await;
    let (_, viewer_secret) = stack
        .store
        .issue_api_token(
            org,
            "dashboard",
            &Role::BuiltIn {
                role: BuiltInRole::Viewer,
            },
            chrono::Duration::days(1),
        )
        .await
        .unwrap();
    let dashboard = stack.api.with_token(Some(viewer_secret.to_string()));
    assert_eq!(
        dashboard
            .get(&format!("/v1/organizations/{org}/runs"))
            .await
            .0,
        StatusCode::OK
    );
    let (status, _, _) = dashboard
        .post(
            &format!("/v1/organizations/{org}/runs"),
            setup_request(account),
            &[],
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a viewer token cannot start runs"
    );
    assert_eq!(
        dashboard
            .get(&format!("/v1/organizations/{other_org}/runs"))
            .await
            .0,
        StatusCode::FORBIDDEN,
        "a token is for its own organisation only"
    );
    // Tokens cannot create organisations: that takes a person.
    let (status, _, _) = dashboard
        .post("/v1/organizations", json!({"name": "by-a-token"}), &[])
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
