//! Gives Windlass access to one Azure subscription, as the seed's setup script does:
//! register the 14 resource providers, create the custom role scoped to the subscription,
//! create the multi-tenant application's service principal, assign the role, verify.
//!
//! Every step is idempotent (deterministic role and assignment ids), so a re-run after a
//! crash or a cancel converges instead of duplicating.

#![allow(unreachable_pub)]

use std::time::Duration;

use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{WorkflowContext, WorkflowResult};

use crate::contracts::{
    AZURE_RESOURCE_PROVIDERS, ApplicationAccess, AssignRole, AzureAccessActivities,
    AzureAccessSetupInput, AzureAccessSetupOutput, RegisterProvider, VerifyAccess,
};
use crate::outcome::{ended, record, step};

#[workflow]
#[derive(Default)]
pub struct AzureAccessSetup;

#[workflow_methods]
impl AzureAccessSetup {
    #[run(name = "azure_access_setup")]
    pub async fn run(
        ctx: &mut WorkflowContext<Self>,
        input: AzureAccessSetupInput,
    ) -> WorkflowResult<AzureAccessSetupOutput> {
        let result = setup(ctx, input).await;
        record(ctx, result).await
    }
}

async fn setup(
    ctx: &WorkflowContext<AzureAccessSetup>,
    input: AzureAccessSetupInput,
) -> WorkflowResult<AzureAccessSetupOutput> {
    let target = input.target;

    // Providers register independently and each can take minutes: all at once.
    let registrations = AZURE_RESOURCE_PROVIDERS.iter().map(|namespace| {
        ctx.execute_activity(
            AzureAccessActivities::register_provider,
            RegisterProvider {
                target: target.clone(),
                namespace: (*namespace).to_owned(),
            },
            step(
                ctx,
                format!("register-provider/{namespace}"),
                Duration::from_secs(30 * 60),
            ),
        )
    });
    let mut registered_providers = Vec::with_capacity(AZURE_RESOURCE_PROVIDERS.len());
    for registration in temporalio_workflow::join_all(registrations).await {
        registered_providers.push(ended(ctx, registration)?.namespace);
    }

    let role = ended(
        ctx,
        ctx.execute_activity(
            AzureAccessActivities::ensure_custom_role,
            target.clone(),
            step(ctx, "ensure-custom-role", Duration::from_secs(10 * 60)),
        )
        .await,
    )?;

    let principal = ended(
        ctx,
        ctx.execute_activity(
            AzureAccessActivities::ensure_service_principal,
            ApplicationAccess {
                target: target.clone(),
                application_id: input.application_id.clone(),
            },
            step(
                ctx,
                "ensure-service-principal",
                Duration::from_secs(10 * 60),
            ),
        )
        .await,
    )?;

    // A new principal takes a while to replicate from Graph to ARM; the activity reports
    // that as retryable and Temporal's backoff waits it out within this budget.
    let assignment = ended(
        ctx,
        ctx.execute_activity(
            AzureAccessActivities::assign_role,
            AssignRole {
                target: target.clone(),
                application_id: input.application_id.clone(),
                role_definition_id: role.id.clone(),
                principal_object_id: principal.object_id.clone(),
            },
            step(ctx, "assign-role", Duration::from_secs(30 * 60)),
        )
        .await,
    )?;

    ended(
        ctx,
        ctx.execute_activity(
            AzureAccessActivities::verify_access,
            VerifyAccess {
                target: target.clone(),
                role_definition_id: role.id.clone(),
                principal_object_id: principal.object_id.clone(),
            },
            step(ctx, "verify-access", Duration::from_secs(10 * 60)),
        )
        .await,
    )?;

    Ok(AzureAccessSetupOutput {
        role_definition_id: role.id,
        role_assignment_id: assignment.id,
        service_principal_object_id: principal.object_id,
        registered_providers,
    })
}
