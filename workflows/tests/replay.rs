//! Every recorded history under `tests/histories/` replays against the current workflow
//! code with the real payload codec. Histories come from the system tests
//! (`UPDATE_HISTORIES=1 cargo test --test system`); a failure here means a workflow's
//! command sequence changed without a patch marker (see ARCHITECTURE.md, "Changing
//! workflow code").

#![allow(unreachable_pub)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use temporalio_common::protos::temporal::api::history::v1::History;
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::workflow_replayer::{WorkflowReplayer, WorkflowReplayerOptions};
use temporalio_sdk::{WorkflowContext, WorkflowContextView, WorkflowResult};
use windlass_core::crypto::DataKey;
use windlass_workflows::deployment_contracts::EnvironmentQueueInput;
use windlass_workflows::engine::codec::{EncryptingCodec, FixedSource, KeyLine, PayloadKeys};
use windlass_workflows::engine::histories::{read_history, replay, replayer};

fn recordings() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/histories");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .map(|entries| entries.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    dirs.retain(|d| d.join("payload-keys.txt").is_file());
    dirs.sort();
    dirs
}

/// `<version> <hex>` lines are the platform's line (every recording before per-organisation
/// lines); `organization:<id> <version> <hex>` lines are that organisation's.
fn keys_of(dir: &Path) -> PayloadKeys {
    let text = std::fs::read_to_string(dir.join("payload-keys.txt")).unwrap();
    let mut lines: HashMap<KeyLine, Vec<(u32, DataKey)>> = HashMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split(' ').collect();
        let (key_line, version, hex) = match fields.as_slice() {
            [version, hex] => (KeyLine::Platform, *version, *hex),
            [label, version, hex] => (KeyLine::parse(label).unwrap(), *version, *hex),
            _ => panic!("unreadable payload key line in {}", dir.display()),
        };
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        lines.entry(key_line).or_default().push((
            version.parse().unwrap(),
            DataKey::from_bytes(&bytes).unwrap(),
        ));
    }
    for versions in lines.values_mut() {
        versions.sort_by_key(|(v, _)| std::cmp::Reverse(*v));
    }
    PayloadKeys::new(Arc::new(FixedSource(lines)), KeyLine::Platform)
}

fn histories_of(dir: &Path) -> Vec<(String, History)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "binpb"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, read_history(&p).unwrap())
        })
        .collect()
}

#[tokio::test]
async fn every_recorded_history_replays_against_the_current_code() {
    let recordings = recordings();
    assert!(
        !recordings.is_empty(),
        "no recorded histories under tests/histories"
    );
    let mut replayed = 0;
    for dir in recordings {
        let histories = histories_of(&dir);
        let names: Vec<String> = histories.iter().map(|(n, _)| n.clone()).collect();
        let failures = replay(
            &replayer(keys_of(&dir)).unwrap(),
            histories.into_iter().map(|(_, h)| h).collect(),
        )
        .await
        .unwrap();
        let failed: Vec<String> = failures
            .iter()
            .map(|(i, f)| format!("{}/{}: {f}", dir.display(), names[*i]))
            .collect();
        assert!(failed.is_empty(), "{failed:#?}");
        replayed += names.len();
    }
    assert!(replayed >= 3, "{replayed} histories replayed");
}

/// The queue workflow as someone might change it without a patch marker: it now sleeps
/// before it looks at its queue. Recorded histories must catch that.
#[workflow]
#[derive(Default)]
pub struct ChangedQueue;

#[workflow_methods]
impl ChangedQueue {
    #[init]
    pub fn init(_ctx: &WorkflowContextView, _input: EnvironmentQueueInput) -> Self {
        Self
    }

    #[run(name = "environment_deployments")]
    pub async fn run(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<()> {
        ctx.timer(std::time::Duration::from_secs(1)).await;
        Ok(())
    }
}

#[tokio::test]
async fn a_command_change_without_a_patch_marker_fails_the_replay() {
    let dir = recordings()
        .into_iter()
        .find(|d| d.ends_with("environment_queue_across_continue_as_new"))
        .expect("the queue's recorded histories");
    let queue_histories: Vec<History> = histories_of(&dir)
        .into_iter()
        .filter(|(name, _)| name.ends_with("-environment.binpb"))
        .map(|(_, h)| h)
        .collect();
    assert!(!queue_histories.is_empty());
    let mut options = WorkflowReplayerOptions::new()
        .data_converter(temporalio_common::data_converters::DataConverter::new(
            temporalio_common::data_converters::PayloadConverter::default(),
            temporalio_common::data_converters::DefaultFailureConverter::default(),
            EncryptingCodec::new(keys_of(&dir)),
        ))
        .build();
    options.register_workflow::<ChangedQueue>().unwrap();
    let changed = WorkflowReplayer::new(options).unwrap();
    let count = queue_histories.len();
    let failures = replay(&changed, queue_histories).await.unwrap();
    assert_eq!(
        failures.len(),
        count,
        "every queue history fails: {failures:?}"
    );
}
