//! Someone who can reach Temporal but holds no Windlass key cannot make Windlass act: a
//! workflow started through the raw Temporal client with a plaintext input (here, the
//! input of an earlier run of a real organisation, replayed under a new workflow id) is
//! refused by the codec, so the workflow never schedules an activity: no call reaches the
//! cloud, nothing is recorded.

use std::time::Duration;

use uuid::Uuid;
use windlass_workflows::engine::{Engine, EngineConfig, WorkflowInput};

use crate::support::Stack;

#[tokio::test]
async fn a_workflow_started_with_a_plaintext_input_never_acts() {
    let stack = Stack::start().await;
    let (org, account) = stack.organization_with_azure_account().await;
    let run = stack.set_up_access(org, account).await;

    let calls_before = stack.azure.requests().len();
    let tokens_before = stack.azure.token_requests().len();
    // A client without the codec's keys: its payloads go to Temporal in clear.
    let raw = Engine::connect(&EngineConfig::new(stack.temporal.address.clone()))
        .await
        .unwrap();
    let forged_run = Uuid::new_v4();
    let forged_id = format!("run-{forged_run}");
    let replayed = serde_json::from_value(run.input.clone()).unwrap();
    raw.start(org, &forged_id, WorkflowInput::AzureAccessSetup(replayed))
        .await
        .expect("Temporal itself accepts the start");

    tokio::time::sleep(Duration::from_secs(8)).await;
    // Temporal has it, still running: its first workflow task keeps failing to decode.
    let sealed = Engine::connect(&stack.engine_config).await.unwrap();
    let state = sealed.describe(&forged_id).await.unwrap();
    assert_eq!(state.status.as_str(), "running", "{state:?}");
    // Not one call reached the Azure stand-in (ARM, Graph or the token endpoint).
    assert_eq!(stack.azure.requests().len(), calls_before);
    assert_eq!(stack.azure.token_requests().len(), tokens_before);
    // Nothing was journalled or recorded for it.
    assert!(stack.store.run_by_id(forged_run).await.unwrap().is_none());
    let (_, steps) = stack
        .api
        .get(&format!("/v1/organizations/{org}/runs/{forged_run}"))
        .await;
    assert!(steps.get("steps").is_none(), "{steps}");
    let audit = stack
        .store
        .audit_entries(org, &Default::default())
        .await
        .unwrap();
    assert!(
        !audit
            .iter()
            .any(|e| e.resource == format!("run:{forged_run}")),
        "{audit:?}"
    );
    raw.cancel(&forged_id, "test over").await.ok();
}
