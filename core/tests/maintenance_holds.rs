//! Maintenance holds its cluster as the cluster target's one unfinished run, and a deleted
//! cluster is gone for everything that would act on it; on SQLite and PostgreSQL.

use chrono::Utc;
use serde_json::json;
use uuid::Uuid;
use windlass_core::cloud_accounts::{CloudProvider, NewCloudAccount};
use windlass_core::clusters::{ClusterSpec, NetworkSpec, NodePoolSpec};
use windlass_core::maintenance::MaintenanceWindow;
use windlass_core::runs::{NewRun, RunStatus, WorkflowKind};
use windlass_core::store::cluster_target;
use windlass_core::{Error, Store};

#[macro_use]
mod support;

on_both_databases!(
    maintenance_waits_for_the_run_holding_its_cluster_and_a_retried_hold_is_the_same,
    a_hold_taken_back_is_not_worked_under,
    a_deleted_cluster_is_gone_and_gives_up_its_name,
);

async fn cluster(store: &Store, name: &str) -> ClusterSpec {
    let org = store
        .create_organization(&format!("acme-{}", Uuid::new_v4()))
        .await
        .unwrap()
        .id;
    let account = store
        .create_cloud_account(NewCloudAccount {
            organization_id: org,
            provider: CloudProvider::Azure,
            tenant_id: "tenant-1".into(),
            external_id: format!("sub-{}", Uuid::new_v4()),
            display_name: "production".into(),
        })
        .await
        .unwrap();
    store
        .create_cluster(&spec(org, account.id, Uuid::new_v4(), name))
        .await
        .unwrap()
}

fn spec(org: Uuid, account: Uuid, id: Uuid, name: &str) -> ClusterSpec {
    ClusterSpec {
        id,
        organization_id: org,
        cloud_account_id: account,
        provider: CloudProvider::Azure,
        name: name.into(),
        region: "westeurope".into(),
        kubernetes_version: "1.33".into(),
        node_pool_version: None,
        network: NetworkSpec::default(),
        node_pools: vec![NodePoolSpec::default_system_pool(CloudProvider::Azure)],
        maintenance_window: MaintenanceWindow::default(),
        placement: None,
        environment_types: windlass_core::clusters::every_environment_type(),
        created_at: Utc::now(),
    }
}

fn upgrade(cluster: &ClusterSpec) -> NewRun {
    NewRun {
        organization_id: cluster.organization_id,
        kind: WorkflowKind::UpgradeCluster,
        target: cluster_target(cluster.id),
        idempotency_key: None,
        request_fingerprint: String::new(),
        input: json!({}),
    }
}

async fn maintenance_waits_for_the_run_holding_its_cluster_and_a_retried_hold_is_the_same(
    store: &Store,
) {
    let cluster = cluster(store, "prod").await;
    let (org, id) = (cluster.organization_id, cluster.id);
    let upgrade_run = match store.insert_run(upgrade(&cluster)).await.unwrap() {
        windlass_core::runs::InsertedRun::Created(run) => run,
        other => panic!("{other:?}"),
    };
    let busy = store
        .hold_cluster_for_maintenance(org, id, "cluster-maintenance-x-run-1", 1)
        .await
        .unwrap_err();
    assert!(
        matches!(&busy, Error::Conflict(m) if m.contains("upgrade_cluster")),
        "{busy}"
    );
    store
        .finish_run(upgrade_run.id, RunStatus::Succeeded, None, None)
        .await
        .unwrap();

    let held = store
        .hold_cluster_for_maintenance(org, id, "cluster-maintenance-x-run-1", 1)
        .await
        .unwrap()
        .expect("the cluster exists");
    assert_eq!(held.run.kind, WorkflowKind::ClusterMaintenance);
    assert_eq!(held.run.status, RunStatus::Running);
    assert_eq!(held.run.engine_workflow_id(), "cluster-maintenance-x-run-1");
    assert_eq!(held.cluster, cluster);
    let again = store
        .hold_cluster_for_maintenance(org, id, "cluster-maintenance-x-run-1", 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.run.id, held.run.id, "a retried hold is the same run");
    // While maintenance holds it, an upgrade is refused, naming the maintenance.
    let refused = store.insert_run(upgrade(&cluster)).await.unwrap_err();
    assert!(
        matches!(&refused, Error::Conflict(m) if m.contains("cluster_maintenance")),
        "{refused}"
    );
    store
        .finish_run(held.run.id, RunStatus::Succeeded, None, None)
        .await
        .unwrap();
    let second = store
        .hold_cluster_for_maintenance(org, id, "cluster-maintenance-x-run-1", 2)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(second.run.id, held.run.id, "the next stretch is a new run");
}

async fn a_hold_taken_back_is_not_worked_under(store: &Store) {
    let cluster = cluster(store, "prod").await;
    let (org, id) = (cluster.organization_id, cluster.id);
    let held = store
        .hold_cluster_for_maintenance(org, id, "m", 1)
        .await
        .unwrap()
        .unwrap();
    // A delete took it back.
    store
        .finish_run(held.run.id, RunStatus::Cancelled, None, Some("taken back"))
        .await
        .unwrap();
    let retried = store
        .hold_cluster_for_maintenance(org, id, "m", 1)
        .await
        .unwrap_err();
    assert!(matches!(retried, Error::Conflict(_)), "{retried}");
}

async fn a_deleted_cluster_is_gone_and_gives_up_its_name(store: &Store) {
    let cluster = cluster(store, "prod").await;
    let (org, id) = (cluster.organization_id, cluster.id);
    store.mark_cluster_deleted(org, id).await.unwrap();
    store.mark_cluster_deleted(org, id).await.unwrap();
    assert!(matches!(
        store.cluster(org, id).await.unwrap_err(),
        Error::NotFound { .. }
    ));
    assert!(store.clusters(org).await.unwrap().is_empty());
    assert!(
        store
            .hold_cluster_for_maintenance(org, id, "m", 1)
            .await
            .unwrap()
            .is_none(),
        "nothing to maintain"
    );
    // Its version is not recorded any more, and its name is free.
    store.record_cluster_version(org, id, "1.34").await.unwrap();
    let again = store
        .create_cluster(&spec(org, cluster.cloud_account_id, Uuid::new_v4(), "prod"))
        .await
        .unwrap();
    assert_eq!(again.name, "prod");
    // The deleted one's id (what its Idempotency-Key names) is not made again.
    let reused = store
        .create_cluster(&spec(org, cluster.cloud_account_id, id, "other"))
        .await
        .unwrap_err();
    assert!(
        matches!(&reused, Error::Conflict(m) if m.contains("was deleted")),
        "{reused}"
    );
}
