//! AKS provisioning end to end: the API starts it, the real terraform applies the blueprint
//! users export (azurerm, served by the provider stand-in against the Azure stand-in) and
//! builds the seed's inventory with its state in the cluster's own storage account (ARM
//! stand-in backed by Azurite), the kubeconfig goes to the cluster's blob container, and the
//! cluster charts install with the real helm against the Kubernetes stand-in.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;
use windlass_core::blueprint::AzureNames;
use windlass_core::cluster_charts::ChartGraph;
use windlass_core::clusters::ClusterSpec;
use windlass_core::runs::{RunStatus, StepStatus};
use windlass_test_support::client::output;

use windlass_api::RunDetail;

use crate::support::{Stack, id_of, step};

pub(crate) fn cluster_request(account: Uuid, name: &str) -> Value {
    json!({
        "name": name,
        "cloud_account_id": account,
        "region": "westeurope",
        "kubernetes_version": "1.33",
    })
}

pub(crate) async fn create_cluster(
    stack: &Stack,
    org: Uuid,
    body: Value,
    key: &str,
) -> (StatusCode, Value) {
    let (status, _, started) = stack
        .api
        .post(
            &format!("/v1/organizations/{org}/clusters"),
            body,
            &[("idempotency-key", key)],
        )
        .await;
    (status, started)
}

/// Resource address -> the id terraform recorded for it, from a state document.
pub(crate) fn resource_ids(state: &[u8]) -> BTreeMap<String, String> {
    let state: Value = serde_json::from_slice(state).unwrap();
    let mut ids = BTreeMap::new();
    for resource in state["resources"].as_array().into_iter().flatten() {
        let address = format!(
            "{}.{}",
            resource["type"].as_str().unwrap(),
            resource["name"].as_str().unwrap()
        );
        for instance in resource["instances"].as_array().into_iter().flatten() {
            let key = match &instance["index_key"] {
                Value::String(k) => format!("{address}[\"{k}\"]"),
                Value::Number(n) => format!("{address}[{n}]"),
                _ => address.clone(),
            };
            ids.insert(
                key,
                instance["attributes"]["id"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
            );
        }
    }
    ids
}

/// The Azure stand-in's own journal of the cluster's resources: how many times each ARM
/// resource under the cluster's resource group (the group included) came into existence,
/// by lowercase id.
pub(crate) fn cluster_creations(stack: &Stack, spec: &ClusterSpec) -> BTreeMap<String, u32> {
    let group = format!(
        "/resourcegroups/{}",
        AzureNames::new(spec).resource_group.to_ascii_lowercase()
    );
    stack
        .azure
        .state()
        .writes
        .into_iter()
        .filter(|(id, w)| {
            w.creations > 0 && (id.contains(&format!("{group}/")) || id.ends_with(&group))
        })
        .map(|(id, w)| (id, w.creations))
        .collect()
}

/// The ARM resources in a state document that ARM made, by address (lowercase ids). An
/// association's composite id names no resource of its own, and the state container is
/// made by the bootstrap through the Blob API, which ARM's journal does not see: both
/// are left out.
pub(crate) fn recorded_arm_ids(state: &[u8], spec: &ClusterSpec) -> BTreeMap<String, String> {
    let state_container = format!(
        "/containers/{}",
        AzureNames::new(spec).state_container.to_ascii_lowercase()
    );
    resource_ids(state)
        .into_iter()
        .filter(|(_, id)| id.starts_with("/subscriptions/") && !id.contains('|'))
        .map(|(address, id)| (address, id.to_ascii_lowercase()))
        .filter(|(_, id)| !id.ends_with(&state_container))
        .collect()
}

/// The private key of the clusters' admin kubeconfig, which no log or output may show.
pub(crate) fn cluster_admin_key(stack: &Stack) -> String {
    let kubeconfig = stack
        .azure
        .state()
        .managed_cluster_kubeconfig
        .expect("the stack gives managed clusters a kubeconfig");
    kubeconfig
        .lines()
        .find_map(|l| l.trim().strip_prefix("client-key-data:"))
        .expect("a client-certificate kubeconfig")
        .trim()
        .to_owned()
}

fn assert_charts_deployed(stack: &Stack, run: &RunDetail) {
    let kube = &stack.clusters.as_ref().unwrap().kube;
    for chart in ChartGraph::standard().charts() {
        let step = step(run, &format!("install-chart/{}", chart.name));
        assert_eq!(step.status, StepStatus::Succeeded, "{step:#?}");
        let releases = kube.helm_releases(&chart.namespace);
        let release = releases
            .iter()
            .find(|r| r.name == chart.name)
            .unwrap_or_else(|| panic!("no release {} in the stand-in: {releases:?}", chart.name));
        assert_eq!(release.status, "deployed", "{release:?}");
    }
}

#[tokio::test]
async fn an_aks_cluster_is_provisioned_and_its_blueprint_reproduces_it() {
    let stack = Stack::with_clusters().await;
    let (org, account) = stack.organization_with_verified_azure_account().await;

    let (status, started) = create_cluster(
        &stack,
        org,
        cluster_request(account, "prod-eu"),
        "create-prod-eu",
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let cluster_id = started["cluster"]["id"].as_str().unwrap().to_owned();
    let run_id = id_of(&started["run"]);
    assert_eq!(started["cluster"]["maintenance_window"]["weekday"], "Tue");

    let run = stack
        .wait_for_run(org, run_id, Duration::from_secs(300), |r| {
            r.finished_at.is_some()
        })
        .await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    for key in ["bootstrap-storage", "terraform-apply", "publish-kubeconfig"] {
        assert_eq!(
            step(&run, key).status,
            StepStatus::Succeeded,
            "{key}: {run:#?}"
        );
    }
    assert_charts_deployed(&stack, &run);

    // The Azure stand-in's own journal: every resource of the cluster was created once,
    // and each one terraform recorded is one of them.
    let spec: ClusterSpec = serde_json::from_value(started["cluster"].clone()).unwrap();
    let creations = cluster_creations(&stack, &spec);
    assert!(creations.values().all(|n| *n == 1), "{creations:#?}");
    let subscription = stack
        .store
        .cloud_account(org, account)
        .await
        .unwrap()
        .external_id;
    let state = stack
        .state_container(&spec, &subscription)
        .await
        .get("cluster.tfstate")
        .await
        .unwrap()
        .expect("the state is in the cluster's storage account");
    let recorded = recorded_arm_ids(&state.content, &spec);
    for (address, id) in &recorded {
        assert_eq!(
            creations.get(id),
            Some(&1),
            "{address} ({id}) in {creations:#?}"
        );
    }
    assert!(
        recorded.values().any(|id| id.contains("/managedclusters/")),
        "{recorded:#?}"
    );
    // Terraform reported each creation: everything but what the bootstrap made and
    // terraform imported.
    let added = output(&run)["terraform"]["add"].as_u64().unwrap() as usize;
    let managed = resource_ids(&state.content).len();
    assert_eq!(added, managed - 3, "{run:#?}");

    // Terraform's and helm's output is in the steps' logs, with the credential masked.
    let kube_token = cluster_admin_key(&stack);
    let (status, log) = stack
        .api
        .get(&format!(
            "/v1/organizations/{org}/runs/{run_id}/log?step=terraform-apply"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{log}");
    let lines: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["line"].as_str().unwrap())
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("azurerm_kubernetes_cluster.this: Creation complete")),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("Apply complete!")),
        "{lines:#?}"
    );
    let (_, helm_log) = stack
        .api
        .get(&format!(
            "/v1/organizations/{org}/runs/{run_id}/log?step=install-chart/cert-manager"
        ))
        .await;
    assert!(!helm_log.as_array().unwrap().is_empty(), "{helm_log}");
    assert!(!log.to_string().contains(&kube_token) && !helm_log.to_string().contains(&kube_token));

    // The resource group carries the seed's tags.
    let names = AzureNames::new(&spec);
    let groups = stack.azure.state().resource_groups;
    let group = groups
        .get(
            &format!(
                "/subscriptions/{subscription}/resourcegroups/{}",
                names.resource_group
            )
            .to_ascii_lowercase(),
        )
        .expect("resource group");
    for tag in ["cluster_id", "organization_id", "region", "creation_date"] {
        assert!(group["tags"][tag].is_string(), "tag {tag}: {group}");
    }
    assert_eq!(group["tags"]["cluster_id"], cluster_id.as_str());

    // The kubeconfig is in the cluster's own storage, not in the run's output.
    assert!(!format!("{run:?}").contains(&kube_token));
    assert_eq!(
        output(&run)["kubeconfig"]["container"],
        names.kubeconfigs_container.as_str()
    );

    // The cluster reads back with its run, and its blueprint reproduces the seed's inventory.
    let (status, detail) = stack
        .api
        .get(&format!("/v1/organizations/{org}/clusters/{cluster_id}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    assert_eq!(detail["last_run"]["id"], run_id.to_string());
    let (status, blueprint) = stack
        .api
        .get(&format!(
            "/v1/organizations/{org}/clusters/{cluster_id}/blueprint"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{blueprint}");
    let count = |kind: &str| {
        blueprint["inventory"]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["kind"] == kind)
            .count()
    };
    for (kind, expected) in [
        ("resource_group", 1),
        ("kubernetes_cluster", 1),
        ("virtual_network", 1),
        ("subnet", 3),
        ("nat_gateway", 3),
        ("public_ip", 3),
        ("storage_account", 1),
        ("blob_container", 3),
        ("container_registry", 1),
        ("managed_identity", 3),
    ] {
        assert_eq!(count(kind), expected, "{kind}");
    }
    assert!(count("load_balancer") >= 1);
    let files = blueprint["files"].as_object().unwrap();
    assert!(files.contains_key("terraform/aks.tf"), "{:?}", files.keys());
    assert!(files.keys().any(|f| f.starts_with("helm/")));
    let everything = blueprint.to_string();
    for secret in [kube_token.as_str(), "sig=", "AccountKey", "PRIVATE KEY"] {
        assert!(
            !everything.contains(secret),
            "the blueprint holds {secret:?}"
        );
    }

    // Weekly maintenance is scheduled on the seed's window: Tuesdays 21:00 UTC.
    let (status, schedule) = stack
        .api
        .get(&format!(
            "/v1/organizations/{org}/clusters/{cluster_id}/maintenance"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{schedule}");
    for next in schedule["next_runs"].as_array().unwrap() {
        let next: chrono::DateTime<chrono::Utc> = next.as_str().unwrap().parse().unwrap();
        assert_eq!(
            next.format("%a %H:%M").to_string(),
            "Tue 21:00",
            "{schedule}"
        );
    }

    // Repeating the request is answered with the same cluster and run.
    let (status, again) = create_cluster(
        &stack,
        org,
        cluster_request(account, "prod-eu"),
        "create-prod-eu",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["run"]["id"], run_id.to_string());
    let (_, clusters) = stack
        .api
        .get(&format!("/v1/organizations/{org}/clusters"))
        .await;
    assert_eq!(clusters.as_array().unwrap().len(), 1);
    // The provisioning (terraform, kubeconfig, the chart graph) is kept for replay tests.
    crate::histories::record_histories(&stack, "aks_provisioning", &[format!("run-{run_id}")])
        .await;
}

#[tokio::test]
async fn a_dry_run_plans_the_inventory_and_creates_nothing() {
    let stack = Stack::with_clusters().await;
    let (org, account) = stack.organization_with_verified_azure_account().await;
    let mut body = cluster_request(account, "staging");
    body["dry_run"] = json!(true);
    let (status, started) = create_cluster(&stack, org, body, "plan-staging").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let run_id = id_of(&started["run"]);
    let run = stack.wait_until_finished(org, run_id).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");

    let planned = output(&run)["terraform"]["add"].as_u64().unwrap() as usize;
    let terraform_managed = started["inventory"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["origin"] != "cloud_managed")
        .count();
    assert!(
        planned >= terraform_managed,
        "planned {planned} of {terraform_managed}"
    );
    assert!(output(&run)["charts"].as_array().unwrap().is_empty());
    let files = started["files"]
        .as_object()
        .expect("a dry run shows its files");
    assert!(
        files["terraform/aks.tf"]
            .as_str()
            .unwrap()
            .contains("azurerm_kubernetes_cluster")
    );

    // Nothing was made: no resource group, no cluster recorded, no chart installed.
    assert!(stack.azure.state().resource_groups.is_empty());
    assert!(stack.azure.state().resources.is_empty());
    let (_, clusters) = stack
        .api
        .get(&format!("/v1/organizations/{org}/clusters"))
        .await;
    assert!(clusters.as_array().unwrap().is_empty());
}

#[tokio::test]
async fn a_worker_killed_during_apply_leaves_a_run_another_worker_completes() {
    let stack = Stack::with_clusters_without_worker().await;
    let (org, account) = stack.organization_with_azure_account().await;
    let mut first = stack
        .cluster_worker_command("first")
        .spawn()
        .expect("spawn windlass worker");
    stack.set_up_access(org, account).await;
    // Long-running creations take seconds, so the kill lands in the middle of the apply.
    stack.azure.set_lro_clock(Duration::from_secs(2), 1);

    let (status, started) = create_cluster(
        &stack,
        org,
        cluster_request(account, "prod-us"),
        "create-prod-us",
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let run_id = id_of(&started["run"]);
    let spec: ClusterSpec = serde_json::from_value(started["cluster"].clone()).unwrap();
    let subscription = stack
        .store
        .cloud_account(org, account)
        .await
        .unwrap()
        .external_id;

    // Wait until terraform has recorded some resources, and is still applying.
    stack
        .wait_for_run(org, run_id, Duration::from_secs(120), |r| {
            r.steps
                .iter()
                .any(|s| s.key == "terraform-apply" && s.status == StepStatus::Running)
        })
        .await;
    let state = stack.state_container(&spec, &subscription).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    let before_kill = loop {
        let ids = match state.get("cluster.tfstate").await.unwrap() {
            Some(blob) => resource_ids(&blob.content),
            None => BTreeMap::new(),
        };
        if ids.len() >= 5 && !ids.contains_key("azurerm_kubernetes_cluster.this") {
            break ids;
        }
        assert!(Instant::now() < deadline, "terraform recorded {ids:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    first.kill().expect("SIGKILL the worker");
    first.wait().unwrap();
    assert!(!before_kill.is_empty());
    assert!(
        state.get("cluster.tfstate.lock").await.unwrap().is_some(),
        "the dead worker's lock is left behind"
    );

    // Another worker, with an empty working directory, as on another machine.
    let mut second = stack
        .cluster_worker_command("second")
        .spawn()
        .expect("spawn windlass worker");
    let run = stack
        .wait_for_run(org, run_id, Duration::from_secs(300), |r| {
            r.finished_at.is_some()
        })
        .await;
    second.kill().unwrap();
    second.wait().unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    let apply = step(&run, "terraform-apply");
    assert!(apply.attempts >= 2, "{apply:#?}");
    assert_charts_deployed(&stack, &run);

    // What the first worker made was not made again: the Azure stand-in's own journal
    // has every resource of the cluster created once, and the state records them all.
    let creations = cluster_creations(&stack, &spec);
    assert!(creations.values().all(|n| *n == 1), "{creations:#?}");
    let after = state.get("cluster.tfstate").await.unwrap().unwrap().content;
    for (address, id) in recorded_arm_ids(&after, &spec) {
        assert_eq!(creations.get(&id), Some(&1), "{address} ({id})");
    }
    let after = resource_ids(&after);
    for address in before_kill.keys() {
        assert!(after.contains_key(address), "{address} was forgotten");
    }
    assert!(after.contains_key("azurerm_kubernetes_cluster.this"));
    assert!(
        state.get("cluster.tfstate.lock").await.unwrap().is_none(),
        "no lock is left once the run is done"
    );
}
