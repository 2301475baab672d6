//! Recorded workflow histories: fetched from Temporal (every run of a workflow id, so a
//! chain that continued as new is kept whole), stored as protobuf files, and replayed
//! against the current workflow code with the real payload codec. A replay that fails
//! means a change to a workflow's commands shipped without a patch marker.

use std::path::Path;

use futures::StreamExt;
use prost::Message;
use temporalio_client::{
    UntypedWorkflow, WorkflowExecutionInfo, WorkflowFetchHistoryOptions, WorkflowHandle,
    WorkflowHistory, WorkflowListOptions,
};
use temporalio_common::data_converters::{
    DataConverter, DefaultFailureConverter, PayloadConverter,
};
use temporalio_common::protos::temporal::api::history::v1::History;
use temporalio_sdk::workflow_replayer::{
    WorkflowReplayFailure, WorkflowReplayer, WorkflowReplayerOptions,
};

use super::codec::{EncryptingCodec, PayloadKeys};
use super::{Engine, EngineError};
use crate::{
    AwsAccessVerify, AzureAccessSetup, AzureAccessTeardown, ClusterMaintenance, DeleteCluster,
    DeployEnvironment, EnvironmentDeployments, ProvisionCluster, UpgradeCluster,
};

impl Engine {
    /// Every run of `workflow_id`, oldest first, as recorded histories.
    pub async fn histories(&self, workflow_id: &str) -> Result<Vec<History>, EngineError> {
        let mut runs: Vec<(String, Option<std::time::SystemTime>)> = self
            .client
            .list_workflows(
                format!("WorkflowId = '{workflow_id}'"),
                WorkflowListOptions::default(),
            )
            .filter_map(
                |item| async move { item.ok().map(|w| (w.run_id().to_owned(), w.start_time())) },
            )
            .collect()
            .await;
        runs.sort_by_key(|(_, started)| *started);
        let mut histories = Vec::new();
        for (run_id, _) in runs {
            let handle: WorkflowHandle<_, UntypedWorkflow> = WorkflowHandle::new(
                self.client.clone(),
                WorkflowExecutionInfo::builder()
                    .namespace(self.namespace.clone())
                    .workflow_id(workflow_id)
                    .run_id(run_id)
                    .build(),
            );
            let events = handle
                .fetch_history(WorkflowFetchHistoryOptions::default())
                .into_events()
                .await?;
            histories.push(History { events });
        }
        Ok(histories)
    }
}

pub fn write_history(path: &Path, history: &History) -> std::io::Result<()> {
    std::fs::write(path, history.encode_to_vec())
}

/// The organisations whose key lines seal payloads in `histories` (to store their keys with
/// a recording). A payload's `windlass-key-line` metadata is stored in the clear, so its
/// value appears verbatim in the encoded history.
pub fn organization_lines<'a>(
    histories: impl Iterator<Item = &'a History>,
) -> std::collections::BTreeSet<uuid::Uuid> {
    const LABEL: &[u8] = b"organization:";
    let mut found = std::collections::BTreeSet::new();
    for history in histories {
        let bytes = history.encode_to_vec();
        for at in 0..bytes.len().saturating_sub(LABEL.len() + 36) {
            let id = &bytes[at + LABEL.len()..at + LABEL.len() + 36];
            if bytes[at..].starts_with(LABEL)
                && let Ok(text) = std::str::from_utf8(id)
                && let Ok(id) = text.parse()
            {
                found.insert(id);
            }
        }
    }
    found
}

pub fn read_history(path: &Path) -> std::io::Result<History> {
    let bytes = std::fs::read(path)?;
    History::decode(bytes.as_slice()).map_err(std::io::Error::other)
}

/// A replayer of every Windlass workflow, opening payloads with `keys`.
pub fn replayer(keys: PayloadKeys) -> Result<WorkflowReplayer, String> {
    let converter = DataConverter::new(
        PayloadConverter::default(),
        DefaultFailureConverter::default(),
        EncryptingCodec::new(keys),
    );
    let mut options = WorkflowReplayerOptions::new()
        .data_converter(converter)
        .build();
    register_every_workflow(&mut options)?;
    WorkflowReplayer::new(options).map_err(|e| e.to_string())
}

fn register_every_workflow(options: &mut WorkflowReplayerOptions) -> Result<(), String> {
    let failed = |e: &dyn std::fmt::Display| e.to_string();
    options
        .register_workflow::<AwsAccessVerify>()
        .map_err(|e| failed(&e))?
        .register_workflow::<AzureAccessSetup>()
        .map_err(|e| failed(&e))?
        .register_workflow::<AzureAccessTeardown>()
        .map_err(|e| failed(&e))?
        .register_workflow::<ProvisionCluster>()
        .map_err(|e| failed(&e))?
        .register_workflow::<ClusterMaintenance>()
        .map_err(|e| failed(&e))?
        .register_workflow::<DeleteCluster>()
        .map_err(|e| failed(&e))?
        .register_workflow::<UpgradeCluster>()
        .map_err(|e| failed(&e))?
        .register_workflow::<DeployEnvironment>()
        .map_err(|e| failed(&e))?
        .register_workflow::<EnvironmentDeployments>()
        .map_err(|e| failed(&e))?;
    Ok(())
}

/// Replays `histories` with `replayer`; the failures, by index.
pub async fn replay(
    replayer: &WorkflowReplayer,
    histories: Vec<History>,
) -> Result<Vec<(usize, WorkflowReplayFailure)>, String> {
    let results = replayer
        .replay_workflows(histories.into_iter().map(WorkflowHistory::from))
        .await
        .map_err(|e| e.to_string())?;
    Ok(results
        .into_iter()
        .enumerate()
        .filter_map(|(i, r)| r.replay_failure.map(|f| (i, f)))
        .collect())
}
