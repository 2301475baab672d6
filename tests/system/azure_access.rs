use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use windlass_activities::azure::{ROLE_ACTIONS, ROLE_DATA_ACTIONS};
use windlass_workflows::contracts::AZURE_RESOURCE_PROVIDERS;

use windlass_standins::azure::OWNER_ROLE_ID;

use windlass_api::StartRun;
use windlass_core::runs::{RunStatus, StepStatus};
use windlass_test_support::client::output;

use crate::support::{
    APPLICATION_ID, Stack, WINDLASS_TENANT, setup_request, step, teardown_request,
};

#[tokio::test]
async fn an_azure_setup_started_through_the_api_completes_with_its_steps_readable() {
    let stack = Stack::start().await;
    // A freshly created principal is unknown to ARM for a while, as in real Azure
    // (longer than the stand-in's default).
    stack
        .azure
        .set_replication_delay(Duration::from_millis(1500));
    let (org, account) = stack.organization_with_azure_account().await;

    let started = stack
        .start_run(org, setup_request(account), None)
        .await
        .unwrap();
    assert_eq!(started.status, RunStatus::Running);
    let run = stack.wait_until_finished(org, started.id).await;

    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    assert!(run.current_step.is_none());
    assert_eq!(run.steps.len(), 14 + 4, "{run:#?}");
    for namespace in AZURE_RESOURCE_PROVIDERS {
        assert_eq!(
            step(&run, &format!("register-provider/{namespace}")).status,
            StepStatus::Succeeded
        );
    }
    let assign = step(&run, "assign-role");
    assert_eq!(assign.status, StepStatus::Succeeded);
    assert!(
        assign.attempts >= 2,
        "the replication delay should have cost at least one retry: {assign:#?}"
    );
    // The new principal (and, by default, the new role) replicate slowly.
    let assign_error = assign.last_error.as_deref().unwrap();
    assert!(
        assign_error.contains("PrincipalNotFound")
            || assign_error.contains("RoleDefinitionDoesNotExist"),
        "{assign:#?}"
    );
    for key in [
        "ensure-custom-role",
        "ensure-service-principal",
        "verify-access",
    ] {
        let s = step(&run, key);
        assert_eq!(s.status, StepStatus::Succeeded, "{s:#?}");
        assert!(s.finished_at.unwrap() >= s.first_started_at);
    }

    // What the customer's tenant now holds, read from the stand-in.
    let azure = stack.azure.state();
    let role_id = output(&run)["role_definition_id"].as_str().unwrap();
    let role = azure
        .role_definitions
        .values()
        .find(|r| r["id"].as_str().unwrap().eq_ignore_ascii_case(role_id))
        .expect("custom role created");
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect()
    };
    let permissions = &role["properties"]["permissions"][0];
    assert_eq!(
        strings(&permissions["actions"]),
        ROLE_ACTIONS.map(String::from)
    );
    assert_eq!(
        strings(&permissions["dataActions"]),
        ROLE_DATA_ACTIONS.map(String::from)
    );
    let account_subscription = role["properties"]["assignableScopes"][0].as_str().unwrap();
    assert_eq!(
        role["properties"]["assignableScopes"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(account_subscription.starts_with("/subscriptions/"));
    let assignment = azure
        .role_assignments
        .values()
        .find(|a| {
            a["properties"]["roleDefinitionId"]
                .as_str()
                .unwrap()
                .eq_ignore_ascii_case(role_id)
        })
        .expect("role assigned");
    assert_eq!(
        assignment["properties"]["principalId"],
        output(&run)["service_principal_object_id"]
    );
    assert_eq!(
        platform_principals(&azure),
        1,
        "service principal of the multi-tenant application created in the customer's tenant"
    );
    assert_eq!(
        azure.providers.len(),
        14,
        "every provider of the seed, and no other"
    );
}

#[tokio::test]
async fn a_repeated_idempotency_key_returns_the_same_run_and_a_rerun_changes_nothing() {
    let stack = Stack::start().await;
    let (org, account) = stack.organization_with_azure_account().await;

    let client = stack.organization_client(org);
    let (first_status, first) = client
        .start_run_answered(&setup_request(account), Some("setup-1"))
        .await;
    let (second_status, second) = client
        .start_run_answered(&setup_request(account), Some("setup-1"))
        .await;
    assert_eq!(first_status, StatusCode::ACCEPTED);
    assert_eq!(second_status, StatusCode::OK, "{second:?}");
    let first = first.unwrap();
    assert_eq!(first.id, second.unwrap().id);

    // The same key for a different request is refused, and the first run is untouched.
    let different = StartRun::AzureAccessSetup {
        cloud_account_id: account,
        setup_identity_client_id: uuid::Uuid::new_v4(),
    };
    let reused = stack
        .start_run(org, different, Some("setup-1"))
        .await
        .unwrap_err();
    assert_eq!(reused.status, StatusCode::CONFLICT, "{reused}");
    assert!(reused.problem.detail.contains("different request"));

    let run = stack.wait_until_finished(org, first.id).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    let (_, runs) = stack
        .api
        .get(&format!("/v1/organizations/{org}/runs"))
        .await;
    assert_eq!(runs.as_array().unwrap().len(), 1, "{runs:#}");

    // A second setup of the same account converges on the same resources.
    let role_id = output(&run)["role_definition_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let assignment_id = output(&run)["role_assignment_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let again = stack.set_up_access(org, account).await;
    assert_eq!(output(&again)["role_definition_id"], role_id.as_str());
    assert_eq!(stack.azure.creations_of(&role_id), 1);
    assert_eq!(stack.azure.creations_of(&assignment_id), 1);
    let windlass_assignments = stack
        .azure
        .state()
        .role_assignments
        .values()
        .filter(|a| {
            a["properties"]["roleDefinitionId"]
                .as_str()
                .unwrap()
                .eq_ignore_ascii_case(&role_id)
        })
        .count();
    assert_eq!(windlass_assignments, 1);
}

#[tokio::test]
async fn cancelling_a_setup_leaves_nothing_the_teardown_cannot_clean() {
    let stack = Stack::start().await;
    // The principal never becomes visible while we watch: the run waits in assign-role.
    stack.azure.set_replication_delay(Duration::from_secs(3600));
    let (org, account) = stack.organization_with_azure_account().await;
    let id = stack
        .start_run(org, setup_request(account), None)
        .await
        .unwrap()
        .id;
    let waiting = stack
        .wait_for_run(org, id, Duration::from_secs(60), |run| {
            run.current_step.as_deref() == Some("assign-role")
        })
        .await;
    assert_eq!(waiting.status, RunStatus::Running);

    // While it runs, a teardown of the same account is refused: they would race.
    let refused = stack
        .start_run(org, teardown_request(account), None)
        .await
        .unwrap_err();
    assert_eq!(refused.status, StatusCode::CONFLICT, "{refused}");

    let (status, _, cancelled) = stack
        .api
        .post(
            &format!("/v1/organizations/{org}/runs/{id}/cancel"),
            Value::Null,
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{cancelled}");
    let run = stack.wait_until_finished(org, id).await;
    assert_eq!(run.status, RunStatus::Cancelled, "{run:#?}");
    assert_ne!(step(&run, "assign-role").status, StepStatus::Running);
    let half_applied = stack.azure.state();
    assert_eq!(half_applied.role_definitions.len(), 1);
    assert_eq!(platform_principals(&half_applied), 1);

    // A teardown acts with the account's proven ownership, which a cancelled setup did
    // not establish; the setup run again (replicated by now) does, and the teardown cleans.
    let refused = stack
        .start_run(org, teardown_request(account), None)
        .await
        .unwrap_err();
    assert_eq!(refused.status, StatusCode::CONFLICT, "{refused}");
    assert!(
        refused.problem.kind.ends_with("/cloud-account-unverified"),
        "{refused:?}"
    );
    stack.azure.set_replication_delay(Duration::ZERO);
    stack.set_up_access(org, account).await;

    let teardown = stack
        .start_run(org, teardown_request(account), None)
        .await
        .unwrap();
    let teardown = stack.wait_until_finished(org, teardown.id).await;
    assert_eq!(teardown.status, RunStatus::Succeeded, "{teardown:#?}");
    let clean = stack.azure.state();
    assert!(
        clean.role_definitions.is_empty(),
        "{:?}",
        clean.role_definitions
    );
    assert!(
        clean
            .role_assignments
            .values()
            .all(|a| a["properties"]["roleDefinitionId"]
                .as_str()
                .unwrap()
                .ends_with(OWNER_ROLE_ID)),
        "only the customer's own Owner assignment is left: {:?}",
        clean.role_assignments
    );
    assert_eq!(platform_principals(&clean), 0);
    assert_eq!(
        output(&teardown)["removed"].as_array().unwrap().len(),
        3,
        "assignment, role and principal removed: {teardown:#?}"
    );
    // A cancelled setup and its teardown are kept for replay tests.
    crate::histories::record_histories(
        &stack,
        "azure_access_cancelled_then_torn_down",
        &[format!("run-{id}"), format!("run-{}", teardown.id)],
    )
    .await;
}

/// Service principals of Windlass's application in customer tenants (not its home one).
fn platform_principals(state: &windlass_standins::azure::State) -> usize {
    state
        .service_principals
        .values()
        .filter(|sp| sp.app_id == APPLICATION_ID && sp.tenant_id != WINDLASS_TENANT)
        .count()
}

#[tokio::test]
async fn throttled_calls_wait_for_retry_after_and_the_run_still_completes() {
    let stack = Stack::start().await;
    let (org, account) = stack.organization_with_azure_account().await;
    // More 429s than the client retries in place (three tries per call): the provider
    // registrations must go back to Temporal, which waits out Retry-After.
    stack.azure.throttle_next(40, 1);
    let started = stack
        .start_run(org, setup_request(account), None)
        .await
        .unwrap();
    let run = stack.wait_until_finished(org, started.id).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    let throttled = stack
        .azure
        .requests()
        .iter()
        .filter(|r| r.status == 429)
        .count();
    assert_eq!(throttled, 40);
    let retried = run.steps.iter().filter(|s| s.attempts > 1).count();
    assert!(retried >= 1, "some step retried through Temporal: {run:#?}");
}

#[tokio::test]
async fn a_setup_after_the_customer_deleted_the_enterprise_app_replaces_the_orphaned_assignment() {
    let stack = Stack::start().await;
    let (org, account) = stack.organization_with_azure_account().await;
    let first = stack.set_up_access(org, account).await;
    let assignment_id = output(&first)["role_assignment_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let old_principal = output(&first)["service_principal_object_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The customer deletes Windlass's enterprise application in the Entra admin centre:
    // its role assignment stays behind, naming a principal that no longer exists.
    let tenant = stack
        .store
        .cloud_account(org, account)
        .await
        .unwrap()
        .tenant_id;
    let deleted = stack
        .azure
        .delete_enterprise_application(&tenant, APPLICATION_ID)
        .expect("the enterprise application existed");
    assert_eq!(deleted, old_principal);

    // Setting up again makes a new principal; ARM refuses to repoint the assignment
    // (RoleAssignmentUpdateNotPermitted), so the setup deletes the orphan and assigns anew.
    let again = stack.set_up_access(org, account).await;
    let new_principal = output(&again)["service_principal_object_id"]
        .as_str()
        .unwrap();
    assert_ne!(new_principal, old_principal);
    assert_eq!(output(&again)["role_assignment_id"], assignment_id.as_str());

    let role_id = output(&again)["role_definition_id"].as_str().unwrap();
    let assignments: Vec<Value> = stack
        .azure
        .state()
        .role_assignments
        .values()
        .filter(|a| {
            a["properties"]["roleDefinitionId"]
                .as_str()
                .unwrap()
                .eq_ignore_ascii_case(role_id)
        })
        .cloned()
        .collect();
    assert_eq!(assignments.len(), 1, "{assignments:#?}");
    assert_eq!(assignments[0]["properties"]["principalId"], new_principal);
    let writes = stack.azure.writes_of(&assignment_id);
    assert_eq!((writes.creations, writes.deletions), (2, 1), "{writes:?}");
    let requests = stack.azure.requests();
    let refused = requests
        .iter()
        .position(|r| r.method == "PUT" && r.path.contains("roleAssignments") && r.status == 409)
        .expect("ARM refused to repoint the orphaned assignment");
    assert!(
        requests[refused..]
            .iter()
            .any(|r| r.method == "DELETE" && r.path.contains("roleAssignments") && r.status == 200),
        "the orphan was deleted after the refusal"
    );
}
