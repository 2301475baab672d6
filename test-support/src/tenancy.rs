//! Fixtures for tenancy and access tests: a custom role holding exactly the grants a test
//! names, and a cluster record hosting some environment types.

use uuid::Uuid;
use windlass_core::Store;
use windlass_core::audit::Environment;
use windlass_core::cloud_accounts::CloudProvider;
use windlass_core::clusters::{ClusterSpec, NetworkSpec, NodePoolSpec};
use windlass_core::rbac::{Grant, Permission, Role, Scope};

/// The grants of a custom role, as a test reads them: `role(&[(p, scope), ...])`.
pub fn role(grants: &[(Permission, Scope)]) -> Role {
    Role::Custom {
        name: "under test".into(),
        grants: grants
            .iter()
            .map(|(permission, scope)| Grant {
                permission: *permission,
                scope: scope.clone(),
            })
            .collect(),
    }
}

/// The secret of an hour-long API token of `org` holding exactly `role`, issued through
/// the store as an administrator would have issued it.
pub async fn token_holding(store: &Store, org: Uuid, role: &Role) -> String {
    let (_, secret) = store
        .issue_api_token(
            org,
            &format!("caller-{}", Uuid::new_v4()),
            role,
            chrono::Duration::hours(1),
        )
        .await
        .unwrap();
    secret.to_string()
}

/// Records [`cluster_record`] in `store`; its id.
pub async fn record_cluster(
    store: &Store,
    org: Uuid,
    account: Uuid,
    name: &str,
    types: &[Environment],
) -> Uuid {
    let spec = cluster_record(org, account, name, types);
    store.create_cluster(&spec).await.unwrap().id
}

/// An AKS cluster of `org` in westeurope hosting only `types`, as recorded (not
/// provisioned: tests that stop at the API write it to the store).
pub fn cluster_record(org: Uuid, account: Uuid, name: &str, types: &[Environment]) -> ClusterSpec {
    ClusterSpec {
        id: Uuid::new_v4(),
        organization_id: org,
        cloud_account_id: account,
        provider: CloudProvider::Azure,
        name: name.into(),
        region: "westeurope".into(),
        kubernetes_version: "1.33".into(),
        node_pool_version: None,
        network: NetworkSpec::default(),
        node_pools: vec![NodePoolSpec::default_system_pool(CloudProvider::Azure)],
        maintenance_window: Default::default(),
        placement: None,
        environment_types: types.to_vec(),
        created_at: chrono::Utc::now(),
    }
}
