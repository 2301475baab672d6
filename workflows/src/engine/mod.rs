//! The thin layer over the Temporal client. Everything outside `windlass-workflows` and
//! `windlass-workers` starts, cancels and reads workflows through [`Engine`], never through
//! the SDK, so an SDK upgrade touches this module and the worker only.

pub mod codec;
mod deployments;
pub mod dev_server;
mod error;
pub mod histories;
pub mod payload_keys;
pub mod pollers;
pub mod schedules;
mod workflow_engine;
mod workflow_input;

use std::str::FromStr;
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use temporalio_client::{
    Client, ClientOptions, Connection, ConnectionOptions, UntypedWorkflow, Url,
    WorkflowCancelOptions, WorkflowDescribeOptions, WorkflowExecutionStatus,
    WorkflowIdConflictPolicy, WorkflowStartOptions,
};
use temporalio_common::data_converters::{
    DataConverter, DefaultFailureConverter, PayloadConverter,
};
use windlass_core::runs::RunStatus;

pub use deployments::{ACCEPT_WAIT, Accepted};
pub use error::EngineError;
pub use workflow_engine::WorkflowEngine;
pub use workflow_input::WorkflowInput;

use crate::{
    AwsAccessVerify, AzureAccessSetup, AzureAccessTeardown, DeleteCluster, ProvisionCluster,
    UpgradeCluster, task_queues,
};

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// gRPC address of the Temporal frontend, e.g. `http://127.0.0.1:7233`.
    pub address: String,
    pub namespace: String,
    /// Where new infrastructure runs are queued; workers for it must be polling.
    pub task_queue: String,
    /// Where deployments are queued.
    pub environment_task_queue: String,
    /// Keys of the encrypting payload codec. Without them payloads go to Temporal in clear,
    /// which only tests of the codec itself should allow.
    pub payload_keys: Option<codec::PayloadKeys>,
    /// Environment queues started by this process continue as new after this many
    /// deployments (default 50); tests set a small one to cross the boundary.
    pub queue_deployments_per_history: Option<u32>,
}

impl EngineConfig {
    pub fn new(address: impl Into<String>) -> Self {
        Self {
            address: address.into(),
            namespace: "default".to_owned(),
            task_queue: task_queues::INFRASTRUCTURE.to_owned(),
            environment_task_queue: task_queues::ENVIRONMENT.to_owned(),
            payload_keys: None,
            queue_deployments_per_history: None,
        }
    }
}

/// A connected Temporal client.
#[derive(Clone)]
pub struct Engine {
    client: Client,
    task_queue: String,
    environment_task_queue: String,
    namespace: String,
    queue_deployments_per_history: Option<u32>,
}

/// What Temporal says about a workflow right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowState {
    pub status: RunStatus,
    pub closed_at: Option<DateTime<Utc>>,
}

impl Engine {
    pub async fn connect(config: &EngineConfig) -> Result<Self, EngineError> {
        let url = Url::from_str(&config.address).map_err(|e| {
            EngineError::Configuration(format!(
                "Temporal address {:?} is not a URL: {e}",
                config.address
            ))
        })?;
        let connection = Connection::connect(ConnectionOptions::new(url).build())
            .await
            .map_err(|e| {
                EngineError::Unavailable(format!(
                    "cannot reach Temporal at {}: {e}",
                    config.address
                ))
            })?;
        let mut options = ClientOptions::new(config.namespace.clone()).build();
        if let Some(keys) = &config.payload_keys {
            options.data_converter = DataConverter::new(
                PayloadConverter::default(),
                DefaultFailureConverter::default(),
                codec::EncryptingCodec::new(keys.clone()),
            );
        }
        let client = Client::new(connection, options)
            .map_err(|e| EngineError::Configuration(e.to_string()))?;
        Ok(Self {
            client,
            task_queue: config.task_queue.clone(),
            environment_task_queue: config.environment_task_queue.clone(),
            namespace: config.namespace.clone(),
            queue_deployments_per_history: config.queue_deployments_per_history,
        })
    }

    /// The raw client, for the worker process only.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Starts a run's workflow. Starting the same workflow id again returns the run already
    /// going, so a caller that crashed between starting and recording can simply retry.
    pub async fn start(
        &self,
        organization_id: uuid::Uuid,
        workflow_id: &str,
        input: WorkflowInput,
    ) -> Result<String, EngineError> {
        // Sealed under the organisation's key line and bound to this workflow.
        let scope = codec::PayloadScope {
            organization_id,
            workflow_id: workflow_id.to_owned(),
        };
        codec::with_scope(scope, self.start_scoped(workflow_id, input)).await
    }

    async fn start_scoped(
        &self,
        workflow_id: &str,
        input: WorkflowInput,
    ) -> Result<String, EngineError> {
        let options = WorkflowStartOptions::new(self.task_queue.clone(), workflow_id)
            .id_conflict_policy(WorkflowIdConflictPolicy::UseExisting)
            .build();
        let client = &self.client;
        let run_id = match input {
            WorkflowInput::AzureAccessSetup(input) => client
                .start_workflow(AzureAccessSetup::run, input, options)
                .await?
                .run_id()
                .map(str::to_owned),
            WorkflowInput::AzureAccessTeardown(input) => client
                .start_workflow(AzureAccessTeardown::run, input, options)
                .await?
                .run_id()
                .map(str::to_owned),
            WorkflowInput::AwsAccessVerify(input) => client
                .start_workflow(AwsAccessVerify::run, input, options)
                .await?
                .run_id()
                .map(str::to_owned),
            WorkflowInput::ProvisionCluster(input) => client
                .start_workflow(ProvisionCluster::run, input, options)
                .await?
                .run_id()
                .map(str::to_owned),
            WorkflowInput::UpgradeCluster(input) => client
                .start_workflow(UpgradeCluster::run, input, options)
                .await?
                .run_id()
                .map(str::to_owned),
            WorkflowInput::DeleteCluster(input) => client
                .start_workflow(DeleteCluster::run, input, options)
                .await?
                .run_id()
                .map(str::to_owned),
        };
        Ok(run_id.unwrap_or_default())
    }

    /// Asks the workflow to stop; it cancels its activities, waits for them, records the
    /// outcome and ends as cancelled.
    pub async fn cancel(&self, workflow_id: &str, reason: &str) -> Result<(), EngineError> {
        self.client
            .get_workflow_handle::<UntypedWorkflow>(workflow_id)
            .cancel(
                WorkflowCancelOptions::builder()
                    .reason(reason.to_owned())
                    .build(),
            )
            .await?;
        Ok(())
    }

    /// Whether the namespace answers: true once a fresh server is ready for work.
    pub async fn ping(&self) -> Result<(), EngineError> {
        use futures::StreamExt;
        let mut listing = std::pin::pin!(
            self.client.list_workflows(
                "",
                temporalio_client::WorkflowListOptions::builder()
                    .limit(1)
                    .build(),
            )
        );
        match listing.next().await {
            None | Some(Ok(_)) => Ok(()),
            Some(Err(e)) => Err(EngineError::Unavailable(e.to_string())),
        }
    }

    pub async fn describe(&self, workflow_id: &str) -> Result<WorkflowState, EngineError> {
        let description = self
            .client
            .get_workflow_handle::<UntypedWorkflow>(workflow_id)
            .describe(WorkflowDescribeOptions::default())
            .await?;
        let status = match description.status() {
            WorkflowExecutionStatus::Completed => RunStatus::Succeeded,
            WorkflowExecutionStatus::Failed => RunStatus::Failed,
            WorkflowExecutionStatus::Canceled => RunStatus::Cancelled,
            WorkflowExecutionStatus::Terminated => RunStatus::Terminated,
            WorkflowExecutionStatus::TimedOut => RunStatus::TimedOut,
            _ => RunStatus::Running,
        };
        Ok(WorkflowState {
            status,
            closed_at: description.close_time().map(to_utc),
        })
    }
}

fn to_utc(at: SystemTime) -> DateTime<Utc> {
    at.into()
}
