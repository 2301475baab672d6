//! Azure's documented lags, on in the stand-in as in real Azure: a new custom role
//! replicates slowly (assigning it answers `RoleDefinitionDoesNotExist`), a new service
//! principal is unknown to ARM for a while (`PrincipalNotFound`), and a new role
//! assignment authorises nothing until it has propagated (`403 AuthorizationFailed`).
//! An access setup followed at once by an AKS provisioning must wait them out; the same
//! runs with the client's windows at zero show what failed before it did.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use uuid::Uuid;
use windlass_activities::azure::SettleWindows;
use windlass_core::runs::{RunStatus, StepStatus};
use windlass_test_support::client::output;

use crate::cluster_provisioning::{cluster_request, create_cluster};
use crate::support::{Stack, id_of, setup_request, step};

/// Assignment propagation long enough that the provisioning's first ARM call is
/// certainly inside it (the setup's last steps take well under a second here).
const PROPAGATION: Duration = Duration::from_secs(4);

/// Requests the platform application (the cluster work's identity) made in the
/// customer's subscription, with their statuses.
fn subscription_requests(stack: &Stack, subscription: &str) -> Vec<(String, String, u16)> {
    stack
        .azure
        .requests()
        .into_iter()
        .filter(|r| {
            r.path
                .to_ascii_lowercase()
                .contains(&subscription.to_ascii_lowercase())
        })
        .map(|r| (r.method, r.path, r.status))
        .collect()
}

async fn subscription_of(stack: &Stack, org: Uuid, account: Uuid) -> String {
    stack
        .store
        .cloud_account(org, account)
        .await
        .unwrap()
        .external_id
}

fn windlass_assignments(stack: &Stack, role_id: &str) -> Vec<Value> {
    stack
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
        .collect()
}

#[tokio::test]
async fn an_access_setup_followed_at_once_by_an_aks_provisioning_succeeds_through_azures_lags() {
    let started = std::time::Instant::now();
    let stack = Stack::with_clusters().await;
    // The stand-in's defaults (role replication, principal replication, Graph lag, LROs on
    // their own clock) stay on; only propagation is lengthened to be sure to be met.
    stack.azure.set_assignment_propagation_delay(PROPAGATION);
    let (org, account) = stack.organization_with_azure_account().await;

    let setup = stack.set_up_access(org, account).await;
    let (status, created) = create_cluster(
        &stack,
        org,
        cluster_request(account, "lagging-eu"),
        "create-lagging-eu",
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{created}");
    let run_id = id_of(&created["run"]);
    let run = stack
        .wait_for_run(org, run_id, Duration::from_secs(300), |r| {
            r.finished_at.is_some()
        })
        .await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");

    // The setup waited for the role to replicate (or the principal) before assigning it.
    let assign = step(&setup, "assign-role");
    assert!(assign.attempts >= 2, "{assign:#?}");
    let assign_error = assign.last_error.as_deref().unwrap();
    assert!(
        assign_error.contains("RoleDefinitionDoesNotExist")
            || assign_error.contains("PrincipalNotFound")
            || assign_error.contains("not visible"),
        "{assign:#?}"
    );
    // The provisioning's first ARM call met the young assignment and waited it out.
    let bootstrap = step(&run, "bootstrap-storage");
    assert!(bootstrap.attempts >= 2, "{bootstrap:#?}");
    assert!(
        bootstrap
            .last_error
            .as_deref()
            .unwrap()
            .contains("AuthorizationFailed"),
        "{bootstrap:#?}"
    );

    // What the customer's subscription holds, read from the stand-in: the role and its
    // assignment once each, ARM refused the platform while the assignment propagated and
    // let it through after, and the cluster's storage account was created once.
    let role_id = output(&setup)["role_definition_id"].as_str().unwrap();
    let assignment_id = output(&setup)["role_assignment_id"].as_str().unwrap();
    assert_eq!(stack.azure.creations_of(role_id), 1);
    assert_eq!(stack.azure.creations_of(assignment_id), 1);
    assert_eq!(windlass_assignments(&stack, role_id).len(), 1);
    let subscription = subscription_of(&stack, org, account).await;
    let requests = subscription_requests(&stack, &subscription);
    let refused_assignments = requests
        .iter()
        .filter(|(m, p, s)| m == "PUT" && p.contains("roleAssignments") && *s == 400)
        .count();
    assert!(refused_assignments >= 1, "{requests:#?}");
    let first_refusal = requests
        .iter()
        .position(|(_, p, s)| *s == 403 && p.contains("resourcegroups"))
        .expect("ARM refused the platform while its assignment propagated");
    assert!(
        requests[first_refusal..]
            .iter()
            .any(|(m, p, s)| m == "PUT" && p.contains("storageAccounts") && *s == 202),
        "{requests:#?}"
    );
    let accounts: Vec<String> = stack
        .azure
        .state()
        .resources
        .keys()
        // The accounts themselves, not what is in or on them (containers, assignments).
        .filter(|k| {
            k.split_once("/storageaccounts/")
                .is_some_and(|(_, name)| !name.contains('/'))
        })
        .cloned()
        .collect();
    assert_eq!(accounts.len(), 1, "{accounts:?}");
    assert_eq!(stack.azure.creations_of(&accounts[0]), 1);
    println!(
        "setup + provisioning through Azure's lags: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test]
async fn without_waiting_out_azures_lags_the_setup_and_the_provisioning_fail() {
    let mut stack = Stack::with_clusters_without_worker().await;
    // The client as it was: every lag terminal at once.
    stack.settle_windows = SettleWindows::none();
    stack.start_in_process_worker().await;
    stack.azure.set_assignment_propagation_delay(PROPAGATION);
    let (org, account) = stack.organization_with_azure_account().await;

    // The new role has not replicated when it is assigned: the setup fails there.
    let started = stack
        .start_run(org, setup_request(account), None)
        .await
        .unwrap();
    let failed = stack.wait_until_finished(org, started.id).await;
    assert_eq!(failed.status, RunStatus::Failed, "{failed:#?}");
    let assign = step(&failed, "assign-role");
    assert_eq!(assign.status, StepStatus::Failed, "{assign:#?}");
    let message = assign.last_error.as_deref().unwrap();
    assert!(
        message.contains("RoleDefinitionDoesNotExist") || message.contains("PrincipalNotFound"),
        "{message}"
    );
    assert!(message.contains("run the access setup again"), "{message}");
    let subscription = subscription_of(&stack, org, account).await;
    assert!(
        !subscription_requests(&stack, &subscription)
            .iter()
            .any(|(m, p, s)| m == "PUT" && p.contains("roleAssignments") && *s == 201),
        "no assignment was made"
    );

    // With replication settled, the setup succeeds; a provisioning started at once
    // meets the assignment still propagating and fails for good.
    stack.azure.set_role_replication_delay(Duration::ZERO);
    stack.azure.set_replication_delay(Duration::ZERO);
    // The first setup's role and principal finish replicating meanwhile.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stack.set_up_access(org, account).await;
    let (status, created) = create_cluster(
        &stack,
        org,
        cluster_request(account, "hasty-eu"),
        "create-hasty-eu",
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{created}");
    let run = stack.wait_until_finished(org, id_of(&created["run"])).await;
    assert_eq!(run.status, RunStatus::Failed, "{run:#?}");
    let bootstrap = step(&run, "bootstrap-storage");
    assert_eq!(bootstrap.attempts, 1, "{bootstrap:#?}");
    let message = bootstrap.last_error.as_deref().unwrap();
    assert!(message.contains("AuthorizationFailed"), "{message}");
    assert!(
        message.contains("Microsoft.Resources/subscriptions/resourceGroups/write"),
        "the message names the refused action: {message}"
    );
    assert!(
        stack
            .azure
            .state()
            .resources
            .keys()
            .all(|k| !k.contains("/storageaccounts/")),
        "no storage account was made"
    );
}
