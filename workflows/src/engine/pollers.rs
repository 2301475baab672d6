//! Who is polling a task queue: what `windlass workers` shows a fleet operator.

use std::time::SystemTime;

use chrono::{DateTime, Utc};
use temporalio_common::protos::temporal::api::enums::v1::{TaskQueueKind, TaskQueueType};
use temporalio_common::protos::temporal::api::taskqueue::v1::TaskQueue;
use temporalio_common::protos::temporal::api::workflowservice::v1::DescribeTaskQueueRequest;

use super::{Engine, EngineError};

/// One worker polling a task queue for one kind of task.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Poller {
    pub task_queue: String,
    /// `workflow` or `activity`.
    pub kind: &'static str,
    /// The worker's identity (`pid@host` unless configured).
    pub identity: String,
    pub last_poll: Option<DateTime<Utc>>,
}

impl Engine {
    /// The workers Temporal has seen polling `task_queue` recently (it forgets a poller a
    /// few minutes after its last poll).
    pub async fn pollers(&self, task_queue: &str) -> Result<Vec<Poller>, EngineError> {
        let mut pollers = Vec::new();
        for (kind, queue_type) in [
            ("workflow", TaskQueueType::Workflow),
            ("activity", TaskQueueType::Activity),
        ] {
            let request = DescribeTaskQueueRequest {
                namespace: self.namespace.clone(),
                task_queue: Some(TaskQueue {
                    name: task_queue.to_owned(),
                    kind: TaskQueueKind::Normal as i32,
                    ..Default::default()
                }),
                task_queue_type: queue_type as i32,
                ..Default::default()
            };
            let response = self
                .client
                .connection()
                .workflow_service()
                .describe_task_queue(tonic_request(request))
                .await
                .map_err(|status| super::error::from_status(&status))?
                .into_inner();
            for poller in response.pollers {
                pollers.push(Poller {
                    task_queue: task_queue.to_owned(),
                    kind,
                    identity: poller.identity,
                    last_poll: poller
                        .last_access_time
                        .and_then(|t| SystemTime::try_from(t).ok().map(DateTime::<Utc>::from)),
                });
            }
        }
        Ok(pollers)
    }
}

fn tonic_request<T>(message: T) -> temporalio_client::tonic::Request<T> {
    temporalio_client::tonic::Request::new(message)
}
