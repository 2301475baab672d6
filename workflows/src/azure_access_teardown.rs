//! Revokes what the setup granted: the role assignment first (that alone revokes access),
//! then the custom role, then optionally the service principal. Resource providers stay
//! registered: they are subscription-wide and other workloads may need them.
//!
//! Every removal treats "already gone" as done, so the teardown cleans up after a setup
//! that was cancelled or crashed at any step.

#![allow(unreachable_pub)]

use std::time::Duration;

use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{WorkflowContext, WorkflowResult};

use crate::contracts::{
    ApplicationAccess, AzureAccessActivities, AzureAccessTeardownInput, AzureAccessTeardownOutput,
};
use crate::outcome::{ended, record, step};

#[workflow]
#[derive(Default)]
pub struct AzureAccessTeardown;

#[workflow_methods]
impl AzureAccessTeardown {
    #[run(name = "azure_access_teardown")]
    pub async fn run(
        ctx: &mut WorkflowContext<Self>,
        input: AzureAccessTeardownInput,
    ) -> WorkflowResult<AzureAccessTeardownOutput> {
        let result = teardown(ctx, input).await;
        record(ctx, result).await
    }
}

async fn teardown(
    ctx: &WorkflowContext<AzureAccessTeardown>,
    input: AzureAccessTeardownInput,
) -> WorkflowResult<AzureAccessTeardownOutput> {
    let target = input.target;
    let mut removed = Vec::new();

    let assignment = ended(
        ctx,
        ctx.execute_activity(
            AzureAccessActivities::remove_role_assignment,
            ApplicationAccess {
                target: target.clone(),
                application_id: input.application_id.clone(),
            },
            step(ctx, "remove-role-assignment", Duration::from_secs(10 * 60)),
        )
        .await,
    )?;
    removed.extend(assignment.removed);

    // ARM refuses to delete a role definition that still has assignments: this order matters.
    let role = ended(
        ctx,
        ctx.execute_activity(
            AzureAccessActivities::remove_custom_role,
            target.clone(),
            step(ctx, "remove-custom-role", Duration::from_secs(10 * 60)),
        )
        .await,
    )?;
    removed.extend(role.removed);

    if input.delete_service_principal {
        let principal = ended(
            ctx,
            ctx.execute_activity(
                AzureAccessActivities::remove_service_principal,
                ApplicationAccess {
                    target,
                    application_id: input.application_id,
                },
                step(
                    ctx,
                    "remove-service-principal",
                    Duration::from_secs(10 * 60),
                ),
            )
            .await,
        )?;
        removed.extend(principal.removed);
    }

    Ok(AzureAccessTeardownOutput { removed })
}
