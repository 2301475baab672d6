//! Waiting for a workload to roll out by watching it, the way `kubectl rollout status`
//! decides: the controller has seen the newest spec, every replica is updated and
//! available; failed once the controller reports `ProgressDeadlineExceeded` (or a Job
//! reports `Failed`).

use std::time::Duration;

use futures::TryStreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use kube::Api;
use kube::api::ListParams;
use kube::runtime::{WatchStreamExt, watcher};
use windlass_core::app_manifests::Workload;

use super::KubeError;

/// A change in what the watched workload reports, for the step log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutEvent {
    pub workload: String,
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Progress {
    Ready(String),
    Progressing(String),
    Failed(String),
}

/// Waits until `workload` in `namespace` has rolled out, reporting each status change.
pub async fn wait_for_rollout(
    client: &kube::Client,
    namespace: &str,
    workload: &Workload,
    timeout: Duration,
    on_event: &mut (dyn FnMut(RolloutEvent) + Send),
) -> Result<(), KubeError> {
    match workload {
        Workload::Scheduled => Ok(()),
        Workload::Deployment(name) => {
            let api = Api::<Deployment>::namespaced(client.clone(), namespace);
            watch(
                api,
                name,
                "deployment",
                deployment_progress,
                timeout,
                on_event,
            )
            .await
        }
        Workload::Job(name) => {
            let api = Api::<Job>::namespaced(client.clone(), namespace);
            watch(api, name, "job", job_progress, timeout, on_event).await
        }
        Workload::Release(release) => {
            // A user chart's workloads carry the standard instance label.
            let api = Api::<Deployment>::namespaced(client.clone(), namespace);
            let selector = format!("app.kubernetes.io/instance={release}");
            let listed = api.list(&ListParams::default().labels(&selector)).await?;
            for deployment in listed.items {
                let name = deployment.metadata.name.unwrap_or_default();
                watch(
                    api.clone(),
                    &name,
                    "deployment",
                    deployment_progress,
                    timeout,
                    on_event,
                )
                .await?;
            }
            Ok(())
        }
    }
}

async fn watch<K>(
    api: Api<K>,
    name: &str,
    kind: &str,
    progress: fn(&K) -> Progress,
    timeout: Duration,
    on_event: &mut (dyn FnMut(RolloutEvent) + Send),
) -> Result<(), KubeError>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    let workload = format!("{kind}/{name}");
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let stream = watcher(api, config).default_backoff().applied_objects();
    let mut stream = std::pin::pin!(stream);
    let deadline = tokio::time::sleep(timeout);
    let mut deadline = std::pin::pin!(deadline);
    let mut last = String::from("not created yet");
    loop {
        let next = tokio::select! {
            _ = &mut deadline => {
                return Err(KubeError::RolloutTimeout { workload, waited: timeout, last_status: last });
            }
            next = stream.try_next() => next,
        };
        let object = match next {
            Ok(Some(object)) => object,
            Ok(None) => {
                return Err(KubeError::Transport(format!(
                    "the watch of {workload} ended"
                )));
            }
            // The watcher backs off and re-lists by itself; the deadline bounds the wait.
            Err(error) => {
                tracing::debug!(%workload, %error, "rollout watch interrupted; resuming");
                continue;
            }
        };
        let (status, outcome) = match progress(&object) {
            Progress::Ready(status) => (status, Some(Ok(()))),
            Progress::Progressing(status) => (status, None),
            Progress::Failed(status) => {
                let failure = KubeError::RolloutFailed(format!("{workload}: {status}"));
                (status, Some(Err(failure)))
            }
        };
        if status != last {
            on_event(RolloutEvent {
                workload: workload.clone(),
                status: status.clone(),
            });
            last = status;
        }
        if let Some(outcome) = outcome {
            return outcome;
        }
    }
}

fn deployment_progress(deployment: &Deployment) -> Progress {
    let generation = deployment.metadata.generation.unwrap_or(0);
    let wanted = deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1);
    let Some(status) = &deployment.status else {
        return Progress::Progressing("waiting for the controller".into());
    };
    if status.observed_generation.unwrap_or(0) < generation {
        return Progress::Progressing("waiting for the controller to see the new spec".into());
    }
    let conditions = status.conditions.as_deref().unwrap_or_default();
    if let Some(stuck) = conditions.iter().find(|c| {
        c.type_ == "Progressing" && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    }) {
        return Progress::Failed(format!(
            "progress deadline exceeded: {}",
            stuck.message.as_deref().unwrap_or("no message")
        ));
    }
    let updated = status.updated_replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    let total = status.replicas.unwrap_or(0);
    let summary = format!("{available}/{wanted} available, {updated}/{wanted} updated");
    if updated >= wanted && available >= wanted && total <= updated {
        Progress::Ready(summary)
    } else {
        Progress::Progressing(summary)
    }
}

fn job_progress(job: &Job) -> Progress {
    let wanted = job.spec.as_ref().and_then(|s| s.completions).unwrap_or(1);
    let Some(status) = &job.status else {
        return Progress::Progressing("waiting for the controller".into());
    };
    let conditions = status.conditions.as_deref().unwrap_or_default();
    // `FailureTarget` comes first (the controller has decided; pods are being
    // terminated), `Failed` once they are gone: either is the end of the Job.
    if let Some(failed) = conditions
        .iter()
        .find(|c| (c.type_ == "Failed" || c.type_ == "FailureTarget") && c.status == "True")
    {
        return Progress::Failed(format!(
            "job failed: {}",
            failed.message.as_deref().unwrap_or("no message")
        ));
    }
    let succeeded = status.succeeded.unwrap_or(0);
    let summary = format!("{succeeded}/{wanted} completed");
    if succeeded >= wanted {
        Progress::Ready(summary)
    } else {
        Progress::Progressing(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(value: serde_json::Value) -> Deployment {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn a_deployment_is_ready_once_the_controller_saw_it_and_all_replicas_are_available() {
        let d = deployment(serde_json::json!({
            "metadata": {"name": "web", "generation": 2},
            "spec": {"replicas": 2, "selector": {}, "template": {}},
            "status": {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}
        }));
        assert!(matches!(deployment_progress(&d), Progress::Progressing(_)));
        let mut d = d;
        d.status.as_mut().unwrap().observed_generation = Some(2);
        assert_eq!(
            deployment_progress(&d),
            Progress::Ready("2/2 available, 2/2 updated".into())
        );
    }

    #[test]
    fn a_job_has_failed_from_its_failure_target_on() {
        let job: Job = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "migrate"},
            "spec": {"template": {}},
            "status": {"failed": 3, "conditions": [{"type": "FailureTarget", "status": "True",
                "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]}
        }))
        .unwrap();
        assert!(matches!(job_progress(&job), Progress::Failed(m) if m.contains("backoff limit")));
    }

    #[test]
    fn a_deployment_past_its_progress_deadline_has_failed() {
        let d = deployment(serde_json::json!({
            "metadata": {"name": "web", "generation": 1},
            "spec": {"replicas": 1, "selector": {}, "template": {}},
            "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 0,
                "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                                "message": "ReplicaSet \"web-1\" has timed out progressing."}]}
        }));
        assert!(matches!(deployment_progress(&d), Progress::Failed(m) if m.contains("timed out")));
    }
}
