//! Histories recorded from the system tests: every run of the named workflows is replayed
//! at once against the current code with the real codec (so a test that runs a workflow
//! also proves its code replays its own history), and with `UPDATE_HISTORIES=1` stored
//! under `workflows/tests/histories/<name>/` with the test's payload keys, where
//! `workflows/tests/replay.rs` replays them on every run from then on.

use windlass_core::keys::TEMPORAL_PAYLOADS;
use windlass_workflows::engine::Engine;
use windlass_workflows::engine::codec::PayloadKeys;
use windlass_workflows::engine::histories::{organization_lines, replay, replayer, write_history};

use crate::support::{Stack, repo_root};

pub async fn record_histories(stack: &Stack, name: &str, workflow_ids: &[String]) {
    let engine = Engine::connect(&stack.engine_config).await.unwrap();
    let versions = stack
        .keys
        .all_versions(TEMPORAL_PAYLOADS, "")
        .await
        .unwrap();
    let mut recorded = Vec::new();
    for workflow_id in workflow_ids {
        let histories = engine.histories(workflow_id).await.unwrap();
        assert!(!histories.is_empty(), "no history of {workflow_id}");
        let kind = workflow_id.split('-').next().unwrap_or("workflow");
        for history in histories {
            recorded.push((format!("{:02}-{kind}", recorded.len()), history));
        }
    }
    let keys = PayloadKeys::from_key_ring(stack.keys.clone());
    let failures = replay(
        &replayer(keys).unwrap(),
        recorded.iter().map(|(_, h)| h.clone()).collect(),
    )
    .await
    .unwrap();
    assert!(
        failures.is_empty(),
        "the current code does not replay its own histories: {failures:?}"
    );
    if std::env::var_os("UPDATE_HISTORIES").is_none() {
        return;
    }
    let dir = repo_root().join("workflows/tests/histories").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // The test stack's throwaway payload keys: what the recorded payloads open with. The
    // platform's line as `<version> <hex>`, each organisation's line the payloads name as
    // `organization:<id> <version> <hex>`.
    let mut keys: Vec<String> = versions
        .iter()
        .map(|(version, key)| format!("{version} {}", hex(key.expose_bytes())))
        .collect();
    for organization in organization_lines(recorded.iter().map(|(_, h)| h)) {
        let versions = stack
            .keys
            .existing_versions(TEMPORAL_PAYLOADS, &organization.to_string())
            .await
            .unwrap();
        keys.extend(versions.iter().map(|(version, key)| {
            format!(
                "organization:{organization} {version} {}",
                hex(key.expose_bytes())
            )
        }));
    }
    std::fs::write(dir.join("payload-keys.txt"), keys.join("\n") + "\n").unwrap();
    for (file, history) in &recorded {
        write_history(&dir.join(format!("{file}.binpb")), history).unwrap();
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
