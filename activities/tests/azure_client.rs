//! ARM/Graph clients against the in-process Azure stand-in.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use uuid::Uuid;
use windlass_activities::azure::*;
use windlass_standins::{AzureStandIn, OidcIssuerStandIn, azure::LroMode};

const TENANT: &str = "8e1f0c6a-3b7d-4a51-9c2e-5f6a7b8c9d0e";
const CLIENT: &str = "2b7c4e19-6d3a-4f80-a1b2-c3d4e5f60718";
const SUB: &str = "0f9e8d7c-6b5a-4c3d-2e1f-0a9b8c7d6e5f";
/// The subject the test identity's federated credential trusts.
const SUBJECT: &str = "windlass:organization:00000000-0000-0000-0000-00000000002a";
const AUDIENCE: &str = "api://AzureADTokenExchange";

/// A workload-identity issuer (the OIDC issuer stand-in: discovery and JWKS on loopback)
/// whose assertions the stand-in's Entra verifies, and the tenant's identity trusting it:
/// Owner of the subscription, allowed to manage service principals.
async fn trusted_issuer(standin: &AzureStandIn) -> &'static OidcIssuerStandIn {
    let issuer = OidcIssuerStandIn::start(0, "unused").await.unwrap();
    standin.seed_customer_tenant(TENANT, SUB, CLIENT, &issuer.issuer, SUBJECT);
    // Serves for the rest of the test process; tests are short.
    Box::leak(Box::new(issuer))
}

fn config(standin: &AzureStandIn, issuer: &'static OidcIssuerStandIn) -> AzureClientConfig {
    config_with(
        standin,
        ClientAssertionSource::callback(move || async move {
            Ok(issuer.assertion(SUBJECT, AUDIENCE, 600))
        }),
    )
}

fn config_with(standin: &AzureStandIn, assertion: ClientAssertionSource) -> AzureClientConfig {
    let mut c = AzureClientConfig::new(
        AzureEndpoints::single_origin(&standin.base_url).unwrap(),
        TENANT,
        CLIENT,
        assertion,
    );
    c.extra_root_ca_pem = Some(standin.ca_cert_pem.clone());
    c.lro_default_poll_interval = Duration::from_millis(50);
    c.lro_timeout = Duration::from_secs(10);
    c.provider_poll_initial = Duration::from_millis(20);
    c.provider_poll_max = Duration::from_millis(100);
    c.provider_timeout = Duration::from_secs(5);
    c
}

async fn setup() -> (AzureStandIn, ArmClient, GraphClient) {
    let standin = AzureStandIn::start().await;
    let cfg = config(&standin, trusted_issuer(&standin).await);
    let arm = ArmClient::new(&cfg).unwrap();
    let graph = GraphClient::new(&cfg).unwrap();
    (standin, arm, graph)
}

fn count_requests(standin: &AzureStandIn, method: &str, path_part: &str) -> usize {
    standin
        .requests()
        .iter()
        .filter(|r| r.method == method && r.path.contains(path_part))
        .count()
}

#[tokio::test]
async fn provider_registration_waits_until_registered() {
    let (standin, arm, _) = setup().await;
    standin.set_provider_registration_delay(Duration::from_millis(300));

    let started = Instant::now();
    arm.register_provider(SUB, "Microsoft.ContainerService")
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "returned while still Registering"
    );
    assert_eq!(
        arm.provider_state(SUB, "Microsoft.ContainerService")
            .await
            .unwrap(),
        "Registered"
    );

    // Repeating is a no-op: no second register call reaches ARM.
    arm.register_provider(SUB, "Microsoft.ContainerService")
        .await
        .unwrap();
    assert_eq!(count_requests(&standin, "POST", "/register"), 1);
    let id = format!("/subscriptions/{SUB}/providers/Microsoft.ContainerService");
    assert_eq!(standin.creations_of(&id), 1);
}

#[tokio::test]
async fn custom_role_put_twice_is_one_creation() {
    let (standin, arm, _) = setup().await;
    standin.set_role_replication_delay(Duration::from_millis(300));
    let org = Uuid::from_u128(42);
    let id = role_definition_id(org, SUB);
    assert_eq!(
        id,
        role_definition_id(org, &SUB.to_uppercase()),
        "id must be stable"
    );
    let role = windlass_custom_role(SUB);

    let first = arm.put_role_definition(SUB, id, &role).await.unwrap();
    let second = arm.put_role_definition(SUB, id, &role).await.unwrap();
    assert_eq!(first.properties, second.properties);

    let resource_id = role_definition_resource_id(SUB, id);
    let writes = standin.state().writes[&resource_id.to_ascii_lowercase()];
    assert_eq!((writes.creations, writes.changes), (1, 0));

    // A new role replicates slowly: reads miss it for a while, as in real Azure.
    assert!(arm.get_role_definition(SUB, id).await.unwrap().is_none());
    tokio::time::sleep(Duration::from_millis(350)).await;
    let read = arm
        .get_role_definition(SUB, id)
        .await
        .unwrap()
        .expect("role exists");
    assert_eq!(read.properties, role);
    assert!(arm.delete_role_definition(SUB, id).await.unwrap());
    assert!(
        !arm.delete_role_definition(SUB, id).await.unwrap(),
        "second delete is a no-op"
    );
    assert!(arm.get_role_definition(SUB, id).await.unwrap().is_none());
}

#[tokio::test]
async fn custom_role_matches_the_reference_permissions_exactly() {
    // Written out independently of the library constants, grouped as in the
    // reference document.
    let groups: &[(&str, &[&str])] = &[
        (
            "Microsoft.ContainerService",
            &[
                "managedClusters/*",
                "locations/operationresults/read",
                "locations/operations/read",
                "operations/read",
                "locations/usages/read",
                "locations/orchestrators/read",
            ],
        ),
        (
            "Microsoft.ContainerRegistry",
            &[
                "registries/*",
                "locations/operationresults/read",
                "operations/read",
                "checkNameAvailability/read",
            ],
        ),
        (
            "Microsoft.Storage",
            &[
                "storageAccounts/*",
                "locations/usages/read",
                "operations/read",
                "storageAccounts/listAccountSas/action",
                "storageAccounts/listServiceSas/action",
                "storageAccounts/listKeys/action",
                "storageAccounts/blobServices/*",
                "storageAccounts/fileServices/*",
            ],
        ),
        (
            "Microsoft.Network",
            &[
                "virtualNetworks/*",
                "networkSecurityGroups/*",
                "routeTables/*",
                "publicIPAddresses/*",
                "loadBalancers/*",
                "networkInterfaces/*",
                "natGateways/*",
                "locations/operations/read",
                "locations/usages/read",
                "operations/read",
                "dnsZones/*",
                "privateDnsZones/*",
                "publicIPPrefixes/*",
                "applicationSecurityGroups/*",
                "privateEndpoints/*",
                "privateLinkServices/*",
            ],
        ),
        (
            "Microsoft.Compute",
            &[
                "virtualMachineScaleSets/*",
                "virtualMachines/*",
                "disks/*",
                "snapshots/*",
                "availabilitySets/*",
                "locations/operations/read",
                "locations/usages/read",
                "locations/vmSizes/read",
                "operations/read",
            ],
        ),
        (
            "Microsoft.Resources",
            &[
                "subscriptions/resourceGroups/*",
                "subscriptions/resources/read",
                "deployments/*",
                "subscriptions/operationresults/read",
                "subscriptions/providers/read",
            ],
        ),
        (
            "Microsoft.Authorization",
            &["roleAssignments/*", "roleDefinitions/read", "*/read"],
        ),
        (
            "Microsoft.ManagedIdentity",
            &["userAssignedIdentities/*", "*/read"],
        ),
        ("Microsoft.KeyVault", &["vaults/*", "operations/read"]),
        (
            "Microsoft.Insights",
            &[
                "components/*",
                "webtests/*",
                "alertRules/*",
                "diagnosticSettings/*",
                "logDefinitions/read",
                "metricDefinitions/read",
            ],
        ),
        (
            "Microsoft.Features",
            &[
                "features/read",
                "providers/features/read",
                "providers/features/register/action",
            ],
        ),
        (
            "Microsoft.ContainerInstance",
            &[
                "containerGroups/*",
                "locations/operations/read",
                "operations/read",
                "locations/usages/read",
            ],
        ),
    ];
    let expected_actions: Vec<String> = groups
        .iter()
        .flat_map(|(ns, xs)| xs.iter().map(move |x| format!("{ns}/{x}")))
        .collect();
    assert_eq!(expected_actions.len(), 68);
    let expected_data_actions = vec![
        "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/*",
        "Microsoft.ContainerRegistry/registries/repositories/content/read",
        "Microsoft.ContainerRegistry/registries/repositories/content/write",
        "Microsoft.ContainerRegistry/registries/repositories/content/delete",
        "Microsoft.ContainerRegistry/registries/repositories/metadata/read",
        "Microsoft.ContainerRegistry/registries/repositories/metadata/write",
    ];
    let expected_providers = [
        "Microsoft.ContainerService",
        "Microsoft.ContainerRegistry",
        "Microsoft.Storage",
        "Microsoft.Network",
        "Microsoft.ContainerInstance",
        "Microsoft.Compute",
        "Microsoft.Authorization",
        "Microsoft.Insights",
        "Microsoft.KeyVault",
        "Microsoft.AppConfiguration",
        "Microsoft.EventGrid",
        "Microsoft.ServiceBus",
        "Microsoft.ManagedIdentity",
        "Microsoft.Features",
    ];
    assert_eq!(RESOURCE_PROVIDERS, expected_providers);

    // Check what ARM actually stored, not just the struct.
    let (standin, arm, _) = setup().await;
    // What was stored, not how fast it replicates (see custom_role_put_twice_is_one_creation).
    standin.set_role_replication_delay(Duration::ZERO);
    let id = role_definition_id(Uuid::from_u128(7), SUB);
    arm.put_role_definition(SUB, id, &windlass_custom_role(SUB))
        .await
        .unwrap();
    let stored = arm
        .get_role_definition(SUB, id)
        .await
        .unwrap()
        .unwrap()
        .properties;
    assert_eq!(stored.permissions.len(), 1);
    let p = &stored.permissions[0];
    assert_eq!(p.actions, expected_actions);
    assert_eq!(p.data_actions, expected_data_actions);
    assert!(p.not_actions.is_empty() && p.not_data_actions.is_empty());
    assert_eq!(
        stored.assignable_scopes,
        vec![format!("/subscriptions/{SUB}")]
    );
    assert_eq!(stored.role_type, "CustomRole");
}

#[tokio::test]
async fn role_assignment_retries_through_replication_delay() {
    let (standin, arm, graph) = setup().await;
    standin.set_replication_delay(Duration::from_millis(500));
    // This test is about the principal; the role replicates at once here.
    standin.set_role_replication_delay(Duration::ZERO);
    // A principal created now (the tenant's own identity exists since long ago).
    let sp = graph
        .ensure_service_principal("5c2a7e1d-8b3f-4d6a-9e0c-1f2a3b4c5d6e")
        .await
        .unwrap();
    let role_uuid = role_definition_id(Uuid::from_u128(1), SUB);
    arm.put_role_definition(SUB, role_uuid, &windlass_custom_role(SUB))
        .await
        .unwrap();
    let role_id = role_definition_resource_id(SUB, role_uuid);
    let scope = format!("/subscriptions/{SUB}");
    let assignment = role_assignment_id(&scope, role_uuid, &sp.id);

    let err = arm
        .put_role_assignment(&scope, assignment, &role_id, &sp.id)
        .await
        .expect_err("principal is not replicated yet");
    assert!(
        matches!(err, AzureError::PrincipalNotFound { .. }),
        "{err:?}"
    );
    assert!(
        matches!(
            err.retry(),
            Retry::Settling {
                lag: Lag::PrincipalReplication,
                ..
            }
        ),
        "replication lag must be waited out: {:?}",
        err.retry()
    );

    tokio::time::sleep(Duration::from_millis(550)).await;
    let created = arm
        .put_role_assignment(&scope, assignment, &role_id, &sp.id)
        .await
        .unwrap();
    assert_eq!(created.properties.principal_id, sp.id);
    // A rerun of the same step hits the same id and changes nothing.
    arm.put_role_assignment(&scope, assignment, &role_id, &sp.id)
        .await
        .unwrap();
    let key = format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{assignment}");
    assert_eq!(standin.creations_of(&key), 1);

    // Same triple under another id: ARM's 409, not retryable.
    let dup = arm
        .put_role_assignment(&scope, Uuid::new_v4(), &role_id, &sp.id)
        .await
        .expect_err("duplicate triple");
    assert_eq!(dup.code(), Some("RoleAssignmentExists"));
    assert_eq!(dup.retry(), Retry::Never);

    // Unknown role definition: indistinguishable from one still replicating, so waited
    // out within the replication window only (then terminal, in the activity layer).
    let missing = role_definition_resource_id(SUB, Uuid::from_u128(99));
    let err = arm
        .put_role_assignment(&scope, Uuid::new_v4(), &missing, &sp.id)
        .await
        .expect_err("unknown role");
    assert!(
        matches!(err, AzureError::RoleDefinitionDoesNotExist { .. }),
        "{err:?}"
    );
    assert!(matches!(
        err.retry(),
        Retry::Settling {
            lag: Lag::RoleDefinitionReplication,
            ..
        }
    ));

    assert!(
        arm.delete_role_assignment(&scope, assignment)
            .await
            .unwrap()
    );
    assert!(
        !arm.delete_role_assignment(&scope, assignment)
            .await
            .unwrap()
    );
    assert!(
        arm.get_role_assignment(&scope, assignment)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn throttling_honours_retry_after_then_surfaces() {
    let (standin, arm, _) = setup().await;
    standin.throttle_next(1, 1);
    let started = Instant::now();
    arm.provider_state(SUB, "Microsoft.Storage").await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was not honoured"
    );
    assert_eq!(
        standin
            .requests()
            .iter()
            .filter(|r| r.status == 429)
            .count(),
        1
    );

    // More 429s than the bounded in-client retries: surfaced, typed, retryable.
    standin.throttle_next(10, 1);
    let err = arm
        .provider_state(SUB, "Microsoft.Storage")
        .await
        .expect_err("still throttled");
    match &err {
        AzureError::Throttled { retry_after, .. } => {
            assert_eq!(*retry_after, Duration::from_secs(1))
        }
        other => panic!("expected Throttled, got {other:?}"),
    }
    assert_eq!(err.retry(), Retry::After(Duration::from_secs(1)));
    // 1 try + 2 retries (the configured default).
    assert_eq!(
        standin
            .requests()
            .iter()
            .filter(|r| r.status == 429)
            .count(),
        1 + 3
    );
}

#[tokio::test]
async fn resource_group_delete_follows_location() {
    let (standin, arm, _) = setup().await;
    standin.set_lro(LroMode::Location, 2, "Succeeded", Some(0));
    let tags = BTreeMap::from([("cluster_id".to_string(), "c-1".to_string())]);
    let rg = arm
        .put_resource_group(SUB, "windlass-c1", "westeurope", &tags)
        .await
        .unwrap();
    assert_eq!(rg.tags, tags);

    arm.delete_resource_group(SUB, "windlass-c1").await.unwrap();
    assert!(
        arm.get_resource_group(SUB, "windlass-c1")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        count_requests(&standin, "GET", "/operationresults/"),
        3,
        "2 in-progress polls + terminal"
    );
    // Deleting again is fine.
    arm.delete_resource_group(SUB, "windlass-c1").await.unwrap();
}

#[tokio::test]
async fn azure_async_operation_wins_over_location() {
    let (standin, arm, _) = setup().await;
    standin.set_lro(LroMode::AzureAsyncOperation, 2, "Succeeded", Some(0));
    let rg = arm
        .put_resource_group(SUB, "windlass-c2", "westeurope", &BTreeMap::new())
        .await
        .unwrap();
    assert_eq!(rg.properties["provisioningState"], "Succeeded");

    arm.delete_resource_group(SUB, "windlass-c2").await.unwrap();
    assert!(
        arm.get_resource_group(SUB, "windlass-c2")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(count_requests(&standin, "GET", "/operationStatuses/"), 6);
    assert_eq!(
        count_requests(&standin, "GET", "/operationresults/"),
        0,
        "Location must be ignored"
    );
    let key = format!("/subscriptions/{SUB}/resourcegroups/windlass-c2");
    let w = standin.writes_of(&key);
    assert_eq!((w.creations, w.deletions), (1, 1));
}

#[tokio::test]
async fn failed_and_canceled_operations_are_terminal() {
    let (standin, arm, _) = setup().await;
    arm.put_resource_group(SUB, "windlass-c3", "westeurope", &BTreeMap::new())
        .await
        .unwrap();

    for (mode, outcome, expected) in [
        (LroMode::AzureAsyncOperation, "Failed", LroOutcome::Failed),
        (
            LroMode::AzureAsyncOperation,
            "Canceled",
            LroOutcome::Canceled,
        ),
        (LroMode::Location, "Failed", LroOutcome::Failed),
    ] {
        standin.set_lro(mode, 1, outcome, Some(0));
        let err = arm
            .delete_resource_group(SUB, "windlass-c3")
            .await
            .expect_err(outcome);
        match &err {
            AzureError::Operation { outcome, .. } => assert_eq!(*outcome, expected, "{mode:?}"),
            other => panic!("expected Operation error, got {other:?}"),
        }
        assert_eq!(err.retry(), Retry::Never);
        assert!(
            arm.get_resource_group(SUB, "windlass-c3")
                .await
                .unwrap()
                .is_some()
        );
    }
}

#[tokio::test]
async fn missing_retry_after_uses_configured_default() {
    let standin = AzureStandIn::start().await;
    let mut cfg = config(&standin, trusted_issuer(&standin).await);
    cfg.lro_default_poll_interval = Duration::from_millis(250);
    let arm = ArmClient::new(&cfg).unwrap();
    arm.put_resource_group(SUB, "windlass-c4", "westeurope", &BTreeMap::new())
        .await
        .unwrap();
    standin.set_lro(LroMode::Location, 2, "Succeeded", None);

    let started = Instant::now();
    arm.delete_resource_group(SUB, "windlass-c4").await.unwrap();
    // Three waits of the default interval (before each of the 3 polls).
    assert!(
        started.elapsed() >= Duration::from_millis(750),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn ensure_service_principal_is_idempotent() {
    let (standin, _, graph) = setup().await;
    standin.set_graph_lag(Duration::from_millis(300));
    let app_id = "5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d";
    let first = graph.ensure_service_principal(app_id).await.unwrap();
    // Graph's read-after-write lag: the principal exists (409) but reads miss it yet.
    let lagging = graph
        .ensure_service_principal(app_id)
        .await
        .expect_err("not readable yet");
    assert!(lagging.is_retryable(), "{lagging:?}");
    tokio::time::sleep(Duration::from_millis(350)).await;
    let second = graph.ensure_service_principal(app_id).await.unwrap();
    assert_eq!(first.id, second.id);
    assert_eq!(first.app_id, app_id);
    let principals = standin.state().service_principals;
    assert_eq!(
        principals.values().filter(|sp| sp.app_id == app_id).count(),
        1
    );
    // The second call really hit Graph's conflict path.
    assert!(
        standin
            .requests()
            .iter()
            .any(|r| r.method == "POST" && r.status == 409)
    );

    let found = graph
        .get_service_principal_by_app_id(app_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, first.id);
    assert!(graph.delete_service_principal(&first.id).await.unwrap());
    assert!(!graph.delete_service_principal(&first.id).await.unwrap());
    assert!(
        graph
            .get_service_principal_by_app_id(app_id)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn tokens_come_from_the_token_endpoint_with_a_client_assertion() {
    let (standin, arm, graph) = setup().await;
    arm.provider_state(SUB, "Microsoft.Network").await.unwrap();
    graph.get_service_principal_by_app_id(CLIENT).await.unwrap();

    let reqs = standin.token_requests();
    assert_eq!(reqs.len(), 2, "one token per audience, then cached");
    for r in &reqs {
        assert_eq!(r.tenant, TENANT);
        assert_eq!(r.client_id, CLIENT);
        assert_eq!(r.grant_type, "client_credentials");
        assert_eq!(
            r.client_assertion_type,
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        );
        assert!(r.had_client_assertion && r.granted);
    }
    let scopes: Vec<_> = reqs.iter().map(|r| r.scope.as_str()).collect();
    assert!(scopes.contains(&"https://management.azure.com/.default"));
    assert!(scopes.contains(&"https://graph.microsoft.com/.default"));

    // Raw protocol checks: no bearer → 401; client secrets are refused.
    let http = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(standin.ca_cert_pem.as_bytes()).unwrap(),
        )
        .build()
        .unwrap();
    let unauth = http
        .get(format!(
            "{}/subscriptions/{SUB}/providers/Microsoft.Network?api-version=2021-04-01",
            standin.base_url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(unauth.status(), 401);
    let secret = http
        .post(format!("{}/{TENANT}/oauth2/v2.0/token", standin.base_url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=client_credentials&client_id={CLIENT}&client_secret=not-allowed&scope=https%3A%2F%2Fmanagement.azure.com%2F.default"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(secret.status(), 401);
    let body: serde_json::Value = secret.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
}

#[tokio::test]
async fn rejected_assertion_is_terminal_and_not_echoed() {
    let standin = AzureStandIn::start().await;
    trusted_issuer(&standin).await;
    let bad = "not-a-jwt-but-secret-material";
    let arm = ArmClient::new(&config_with(
        &standin,
        ClientAssertionSource::callback(move || async move { Ok(bad.to_owned()) }),
    ))
    .unwrap();
    let err = arm
        .provider_state(SUB, "Microsoft.Network")
        .await
        .expect_err("bad assertion");
    assert!(
        matches!(
            err,
            AzureError::Credential {
                transient: false,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.retry(), Retry::Never);
    let text = format!("{err} {err:?}");
    assert!(
        !text.contains(bad),
        "error text leaks the assertion: {text}"
    );
}

/// Entra's refusals as a client sees them: an expired assertion (AADSTS700024), one whose
/// subject no federated credential names (AADSTS70021), an application not in the tenant
/// (AADSTS700016). Each is terminal, and the journal records the code.
#[tokio::test]
async fn entra_refuses_expired_mismatched_and_unknown_assertions() {
    let standin = AzureStandIn::start().await;
    let issuer = trusted_issuer(&standin).await;
    let cases: [(ClientAssertionSource, &str, u32); 3] = [
        (
            ClientAssertionSource::callback(move || async move {
                Ok(issuer.assertion(SUBJECT, AUDIENCE, -3600))
            }),
            CLIENT,
            700024,
        ),
        (
            ClientAssertionSource::callback(move || async move {
                Ok(issuer.assertion("windlass:organization:someone-else", AUDIENCE, 600))
            }),
            CLIENT,
            70021,
        ),
        (
            ClientAssertionSource::callback(move || async move {
                Ok(issuer.assertion(SUBJECT, AUDIENCE, 600))
            }),
            "7e1d0c9b-8a7f-4e6d-9c5b-4a3f2e1d0c9b",
            700016,
        ),
    ];
    for (assertion, client_id, code) in cases {
        let mut config = config_with(&standin, assertion);
        config.client_id = client_id.to_owned();
        let err = ArmClient::new(&config)
            .unwrap()
            .provider_state(SUB, "Microsoft.Network")
            .await
            .expect_err("refused");
        assert_eq!(err.retry(), Retry::Never, "{err:?}");
        assert!(err.to_string().contains(&format!("AADSTS{code}")), "{err}");
        let last = standin.token_requests().pop().unwrap();
        assert_eq!(last.error_code, Some(code));
        assert!(!last.granted);
    }
    assert!(standin.requests().is_empty(), "nothing reached ARM");
}

#[tokio::test]
async fn another_operation_in_progress_is_retried_after_retry_after() {
    let (standin, arm, _) = setup().await;
    standin.busy_next("PUT", "/resourcegroups/rg-busy", 1, 1);
    let started = Instant::now();
    arm.put_resource_group(SUB, "rg-busy", "westeurope", &BTreeMap::new())
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was not honoured"
    );
    assert_eq!(count_requests(&standin, "PUT", "rg-busy"), 2);

    // Busier than the client retries in place: surfaced retryable, with ARM's delay.
    standin.busy_next("PUT", "/resourcegroups/rg-busier", 5, 1);
    let err = arm
        .put_resource_group(SUB, "rg-busier", "westeurope", &BTreeMap::new())
        .await
        .expect_err("still busy");
    assert_eq!(err.code(), Some("AnotherOperationInProgress"));
    assert_eq!(err.retry(), Retry::After(Duration::from_secs(1)));
}

#[tokio::test]
async fn policy_and_lock_refusals_are_terminal_and_name_the_policy_and_the_lock() {
    let (standin, arm, _) = setup().await;
    let scope = format!("/subscriptions/{SUB}");
    standin.add_deny_policy(
        &format!("{scope}/resourceGroups/rg-denied"),
        "deny-rg",
        "Microsoft.Resources/subscriptions/resourceGroups/write",
    );
    let denied = arm
        .put_resource_group(SUB, "rg-denied", "westeurope", &BTreeMap::new())
        .await
        .expect_err("denied by policy");
    assert!(
        matches!(denied, AzureError::DisallowedByPolicy { .. }),
        "{denied:?}"
    );
    assert_eq!(denied.retry(), Retry::Never);
    assert!(
        denied.to_string().contains("policyAssignments/deny-rg"),
        "{denied}"
    );

    arm.put_resource_group(SUB, "rg-kept", "westeurope", &BTreeMap::new())
        .await
        .unwrap();
    standin.add_lock(
        &format!("{scope}/resourceGroups/rg-kept"),
        "keep",
        "CanNotDelete",
    );
    let locked = arm
        .delete_resource_group(SUB, "rg-kept")
        .await
        .expect_err("locked");
    assert!(
        matches!(locked, AzureError::ScopeLocked { .. }),
        "{locked:?}"
    );
    assert_eq!(locked.retry(), Retry::Never);
    assert!(
        locked
            .to_string()
            .contains("rg-kept/providers/Microsoft.Authorization/locks/keep"),
        "{locked}"
    );
    assert!(
        arm.get_resource_group(SUB, "rg-kept")
            .await
            .unwrap()
            .is_some(),
        "the locked group is still there"
    );
}

#[tokio::test]
async fn a_storage_account_name_taken_elsewhere_is_terminal() {
    let (standin, arm, _) = setup().await;
    arm.put_resource_group(SUB, "rg-sa", "westeurope", &BTreeMap::new())
        .await
        .unwrap();
    standin.take_storage_account_name("takenbyother01");
    let err = arm
        .put_storage_account(
            SUB,
            "rg-sa",
            "takenbyother01",
            "westeurope",
            &BTreeMap::new(),
        )
        .await
        .expect_err("taken");
    assert_eq!(err.code(), Some("StorageAccountAlreadyTaken"));
    assert_eq!(err.status(), Some(409));
    assert_eq!(err.retry(), Retry::Never);
}
