//! Proves that an organisation controls an AWS account before Windlass acts in it: one
//! step, `assume-role`, whose success the run recorder turns into the account's verified
//! claim (see `windlass-activities` `runs.rs`).
//!
//! The customer's role trusts Windlass only with their organisation's ExternalId, so
//! another organisation that registered the same account cannot pass this step.

#![allow(unreachable_pub)]

use std::time::Duration;

use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{WorkflowContext, WorkflowResult};

use crate::aws_access_contracts::{AwsAccessActivities, AwsAccessVerified, AwsAccessVerifyInput};
use crate::outcome::{ended_with_cause, record, step};

#[workflow]
#[derive(Default)]
pub struct AwsAccessVerify;

#[workflow_methods]
impl AwsAccessVerify {
    #[run(name = "aws_access_verify")]
    pub async fn run(
        ctx: &mut WorkflowContext<Self>,
        input: AwsAccessVerifyInput,
    ) -> WorkflowResult<AwsAccessVerified> {
        let result = verify(ctx, input).await;
        record(ctx, result).await
    }
}

async fn verify(
    ctx: &WorkflowContext<AwsAccessVerify>,
    input: AwsAccessVerifyInput,
) -> WorkflowResult<AwsAccessVerified> {
    // Throttling and STS outages are retried within the budget; a refusing role is not,
    // and its message (which role, which ExternalId it must require) is the run's error.
    ended_with_cause(
        ctx,
        ctx.execute_activity(
            AwsAccessActivities::verify_assume_role,
            input.target,
            step(ctx, "assume-role", Duration::from_secs(10 * 60)),
        )
        .await,
    )
}
