//! What a succeeded run proves about a cloud account: the organisation controls it. Azure:
//! the access setup authenticated as the customer's setup identity with the organisation's
//! own workload-identity subject. AWS: the customer's role accepted the organisation's
//! ExternalId and its session is in the registered account.

use uuid::Uuid;
use windlass_core::audit::{ActorKind, AuditResult, NewAuditEntry};
use windlass_core::runs::{Run, WorkflowKind};
use windlass_core::{Result, Store};
use windlass_workflows::aws_access_contracts::AwsAccessVerifyInput;
use windlass_workflows::contracts::AzureAccessSetupInput;

pub(crate) struct Proof {
    organization_id: Uuid,
    cloud_account_id: Uuid,
    /// Named in the `cloud_accounts.verify` audit entry.
    kind: &'static str,
    /// What succeeded, for the error of a run whose proof lost the race.
    what: &'static str,
}

impl Proof {
    pub(crate) fn of(run: &Run) -> Option<Self> {
        let unreadable = || {
            tracing::error!(run_id = %run.id, kind = run.kind.as_str(), "a verifying run's input is unreadable");
        };
        match run.kind {
            WorkflowKind::AzureAccessSetup => {
                let Ok(input) = serde_json::from_value::<AzureAccessSetupInput>(run.input.clone())
                else {
                    unreadable();
                    return None;
                };
                Some(Self {
                    organization_id: input.target.organization_id,
                    cloud_account_id: input.target.cloud_account_id,
                    kind: "azure_access_setup",
                    what: "the setup",
                })
            }
            WorkflowKind::AwsAccessVerify => {
                let Ok(input) = serde_json::from_value::<AwsAccessVerifyInput>(run.input.clone())
                else {
                    unreadable();
                    return None;
                };
                Some(Self {
                    organization_id: input.target.organization_id,
                    cloud_account_id: input.target.cloud_account_id,
                    kind: "aws_assume_role",
                    what: "the AssumeRole",
                })
            }
            _ => None,
        }
    }
}

/// A `cloud_accounts.verify` entry: which proof, by which run, and why it failed.
pub(crate) async fn audit_proof(
    store: &Store,
    run: &Run,
    proof: &Proof,
    result: AuditResult,
    error: Option<&str>,
) -> Result<()> {
    let mut details = serde_json::json!({"run_id": run.id, "proof": proof.kind});
    if let Some(error) = error {
        details["error"] = error.into();
    }
    let entry = NewAuditEntry {
        client: Some("windlass-worker".to_owned()),
        ..NewAuditEntry::new(
            Some(run.organization_id),
            "system:worker",
            ActorKind::System,
            "cloud_accounts.verify",
            format!("cloud_account:{}", proof.cloud_account_id),
            result,
            details,
        )
    };
    store.append_audit(entry).await?;
    Ok(())
}

/// A succeeded verifying run (Azure access setup, AWS access verification) verifies its
/// account. `Err(reason)` when another organisation verified the same account first (the
/// run then ends failed); the reason does not say which organisation.
pub(crate) async fn verify_account(
    store: &Store,
    run: &Run,
) -> Result<std::result::Result<(), String>> {
    let Some(proof) = Proof::of(run) else {
        return Ok(Ok(()));
    };
    let verified = store
        .mark_cloud_account_verified(proof.organization_id, proof.cloud_account_id)
        .await;
    let (result, refusal) = match verified {
        Ok(_) => (AuditResult::Success, None),
        Err(windlass_core::Error::Conflict(reason)) => (AuditResult::Failed, Some(reason)),
        Err(windlass_core::Error::NotFound { .. }) => return Ok(Ok(())),
        Err(e) => return Err(e),
    };
    audit_proof(store, run, &proof, result, refusal.as_deref()).await?;
    Ok(match refusal {
        None => Ok(()),
        Some(reason) => Err(format!(
            "{} succeeded but the account cannot be verified: {reason}",
            proof.what
        )),
    })
}

/// An AWS verification exists only to prove ownership: its failure (the role refused this
/// organisation's ExternalId) is a refused proof, audited as such. A proof that lost the
/// race was audited by [`verify_account`] already.
pub(crate) async fn audit_refused_proof(
    store: &Store,
    run: &Run,
    error: Option<&str>,
) -> Result<()> {
    if run.kind != WorkflowKind::AwsAccessVerify {
        return Ok(());
    }
    match Proof::of(run) {
        Some(proof) => audit_proof(store, run, &proof, AuditResult::Failed, error).await,
        None => Ok(()),
    }
}
