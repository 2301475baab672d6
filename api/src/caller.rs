//! Who called, from where, and how what they did reaches the audit log: every state
//! change commits with its entry ([`Caller::audited`]), every refusal is recorded.

use uuid::Uuid;
use windlass_core::audit::{ActorKind, AuditResult, NewAuditEntry};

use windlass_core::store::AuditedError;

use crate::AppState;
use crate::problem::Problem;

/// The caller of a request, authenticated and authorised (see `authz`).
#[derive(Debug, Clone)]
pub struct Caller {
    pub actor: String,
    pub actor_kind: ActorKind,
    pub client: Option<String>,
    pub ip: Option<String>,
}

impl Caller {
    /// An audit entry of something this caller did.
    pub fn entry(
        &self,
        organization_id: Option<Uuid>,
        action: &str,
        resource: String,
        result: AuditResult,
        details: serde_json::Value,
    ) -> NewAuditEntry {
        NewAuditEntry {
            client: self.client.clone(),
            ip: self.ip.clone(),
            ..NewAuditEntry::new(
                organization_id,
                self.actor.clone(),
                self.actor_kind,
                action,
                resource,
                result,
                details,
            )
        }
    }

    /// Appends what this caller did. The change has already happened, so a failure to
    /// record is logged loudly rather than turned into an error the caller would retry.
    pub async fn record<T>(
        &self,
        state: &AppState,
        organization_id: Option<Uuid>,
        action: &str,
        resource: String,
        outcome: &Result<T, Problem>,
        details: serde_json::Value,
    ) {
        let (result, details) = match outcome {
            Ok(_) => (AuditResult::Success, details),
            Err(problem) => refusal(problem, details),
        };
        let mut entry = self.entry(organization_id, action, resource, result, details);
        crate::audit_scope::fill(state, &mut entry).await;
        if let Err(error) = state.store.append_audit(entry).await {
            tracing::error!(%error, action, "could not append to the audit log");
        }
    }
}

impl Caller {
    /// Makes a change of Windlass's own records and its audit entry in one transaction:
    /// if the entry cannot be written, the change does not happen (503, nothing to undo).
    /// A change that fails is recorded as a failed attempt, as with [`Caller::record`].
    ///
    /// `resource` names what the entry is about: with the change's result on success,
    /// with `None` for a failed attempt (and for finding the entry's scope beforehand).
    pub async fn audited<T, C>(
        &self,
        state: &AppState,
        organization_id: Option<Uuid>,
        action: &str,
        resource: impl Fn(Option<&T>) -> String,
        details: serde_json::Value,
        change: C,
    ) -> Result<T, Problem>
    where
        C: for<'c> FnOnce(
            &'c mut windlass_core::store::Connection,
        ) -> futures::future::BoxFuture<'c, windlass_core::Result<T>>,
    {
        // The scope (cluster, project, environment, service) is looked up before the
        // transaction: the change's own rows are not visible outside it yet, and the
        // lookup must not hold the audit lock.
        let mut scoped = self.entry(
            organization_id,
            action,
            resource(None),
            AuditResult::Success,
            details.clone(),
        );
        crate::audit_scope::fill(state, &mut scoped).await;
        let made = state
            .store
            .audited(change, |value| {
                let mut entry = self.entry(
                    organization_id,
                    action,
                    resource(Some(value)),
                    AuditResult::Success,
                    details.clone(),
                );
                crate::audit_scope::fill_named(&mut entry);
                entry.cluster_id = entry.cluster_id.or(scoped.cluster_id);
                entry.project_id = entry.project_id.or(scoped.project_id);
                entry.environment = entry.environment.or(scoped.environment);
                entry.service = entry.service.take().or(scoped.service.clone());
                Some(entry)
            })
            .await;
        match made {
            Ok((value, _)) => Ok(value),
            Err(AuditedError::Change(error)) => {
                self.refused(
                    state,
                    organization_id,
                    action,
                    resource(None),
                    details,
                    error.into(),
                )
                .await
            }
            Err(AuditedError::Audit(error)) => Err(unwritable(error, action)),
        }
    }

    /// A change outside Windlass's records (Temporal: a cancel, a schedule's pause) made
    /// only once its entry is written, in one transaction with it (see
    /// [`windlass_core::Store::audited_ahead`]); a change that fails is recorded as a
    /// failed attempt instead.
    pub async fn audited_call<T>(
        &self,
        state: &AppState,
        organization_id: Option<Uuid>,
        action: &str,
        resource: String,
        details: serde_json::Value,
        change: impl std::future::Future<Output = Result<T, Problem>>,
    ) -> Result<T, Problem> {
        let mut entry = self.entry(
            organization_id,
            action,
            resource.clone(),
            AuditResult::Success,
            details.clone(),
        );
        crate::audit_scope::fill(state, &mut entry).await;
        match state.store.audited_ahead(entry, change).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(problem)) => {
                self.refused(state, organization_id, action, resource, details, problem)
                    .await
            }
            Err(error) => Err(unwritable(error, action)),
        }
    }

    /// Records a refused or failed attempt (nothing changed) and hands the problem back,
    /// for the checks a route makes before its change.
    pub async fn refused<T>(
        &self,
        state: &AppState,
        organization_id: Option<Uuid>,
        action: &str,
        resource: String,
        details: serde_json::Value,
        problem: Problem,
    ) -> Result<T, Problem> {
        // Recorded as a `()` result: `T` (a response) need not be shareable across the await.
        let failed: Result<(), Problem> = Err(problem);
        self.record(state, organization_id, action, resource, &failed, details)
            .await;
        failed.map(|()| unreachable!("recorded as a failure"))
    }
}

/// How a refused or failed attempt reads: denied for a 403, failed otherwise, with the
/// answer's status in its details.
fn refusal(problem: &Problem, mut details: serde_json::Value) -> (AuditResult, serde_json::Value) {
    if let Some(map) = details.as_object_mut() {
        map.insert("status".into(), problem.status.into());
    }
    let result = if problem.status == 403 {
        AuditResult::Denied
    } else {
        AuditResult::Failed
    };
    (result, details)
}

/// The answer to a change refused because its entry could not be written.
pub(crate) fn unwritable(error: windlass_core::Error, action: &str) -> Problem {
    tracing::error!(%error, action, "audit log unwritable: change refused");
    Problem::unavailable(
        "the audit log could not be written, so nothing was changed; try again",
        5,
    )
}
