//! The exported AKS blueprint applied by the real terraform through the provider stand-in
//! against the ARM stand-in: the bootstrap's resources are imported (its import blocks),
//! everything else created once, a second plan finds nothing to do, a retried apply after
//! losing the state creates nothing twice once the existing resources are imported, and
//! destroy removes what apply made. What is checked is the ARM stand-in's own record
//! (its documents and its journal of creations), not what terraform reports.

use std::path::{Path, PathBuf};
use std::process::Command;
use windlass_test_support::clusters::aks_cluster;

use serde_json::{Value, json};
use windlass_core::blueprint::{AzureNames, Blueprint, render};
use windlass_core::cloud_accounts::CloudAccount;
use windlass_core::clusters::ClusterSpec;
use windlass_provider_standin::mirror::{self, MirroredProvider};
use windlass_standins::azure::{AzureStandIn, StandInOptions, TOKEN_EXCHANGE_AUDIENCE};
use windlass_standins::oidc::OidcIssuerStandIn;

use windlass_test_support::clusters::{AZURE_SUBSCRIPTION as SUBSCRIPTION, AZURE_TENANT as TENANT};
const CLIENT: &str = "0c0c0c0c-1111-2222-3333-444444444444";
const SUBJECT: &str = "windlass:terraform";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn cluster() -> (ClusterSpec, CloudAccount) {
    aks_cluster()
}

struct Bed {
    arm: AzureStandIn,
    issuer: OidcIssuerStandIn,
    dir: tempfile::TempDir,
    cli_config: PathBuf,
    ca_file: PathBuf,
    names: AzureNames,
    blueprint: Blueprint,
}

impl Bed {
    async fn start() -> Self {
        let arm = AzureStandIn::start_with(StandInOptions::default())
            .await
            .unwrap();
        let issuer = OidcIssuerStandIn::start(0, TOKEN_EXCHANGE_AUDIENCE)
            .await
            .unwrap();
        arm.seed_customer_tenant(TENANT, SUBSCRIPTION, CLIENT, &issuer.issuer, SUBJECT);
        let dir = tempfile::tempdir().unwrap();
        let ca_file = dir.path().join("arm-ca.pem");
        std::fs::write(&ca_file, &arm.ca_cert_pem).unwrap();
        let cli_config = mirror::install(
            dir.path(),
            Path::new(env!("CARGO_BIN_EXE_windlass-provider-standin")),
            &mirror::schema_dir(&repo_root()),
            &[MirroredProvider::new("azurerm", mirror::AZURERM_NEWEST)],
        )
        .unwrap();
        let (spec, account) = cluster();
        let blueprint = render(&spec, &account).unwrap();
        Self {
            arm,
            issuer,
            dir,
            cli_config,
            ca_file,
            names: AzureNames::new(&spec),
            blueprint,
        }
    }

    fn id(&self, tail: &str) -> String {
        format!(
            "/subscriptions/{SUBSCRIPTION}/resourceGroups/{}{tail}",
            self.names.resource_group
        )
    }

    /// A fresh working directory with the exported terraform files, its state kept
    /// locally (as the worker's backend override does).
    fn workdir(&self, name: &str) -> PathBuf {
        let dir = self.dir.path().join(name);
        for (path, text) in &self.blueprint.files {
            if let Some(file) = path.strip_prefix("terraform/") {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(dir.join(file), text).unwrap();
            }
        }
        std::fs::write(
            dir.join("windlass_backend_override.tf"),
            "terraform {\n  backend \"local\" {}\n}\n",
        )
        .unwrap();
        dir
    }

    fn terraform(&self, dir: &Path, args: &[&str]) -> (bool, String) {
        let out = Command::new(repo_root().join(".tools/bin/terraform"))
            .args(args)
            .current_dir(dir)
            .env("TF_CLI_CONFIG_FILE", &self.cli_config)
            .env("TF_IN_AUTOMATION", "1")
            .env("CHECKPOINT_DISABLE", "1")
            .env("WINDLASS_STANDIN_ARM_URL", &self.arm.base_url)
            .env("WINDLASS_STANDIN_ARM_CA_FILE", &self.ca_file)
            .env("WINDLASS_STANDIN_ARM_POLL_SECONDS", "0")
            .env("ARM_CLIENT_ID", CLIENT)
            .env(
                "ARM_OIDC_TOKEN",
                self.issuer
                    .assertion(SUBJECT, TOKEN_EXCHANGE_AUDIENCE, 3600),
            )
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    fn tf(&self, dir: &Path, args: &[&str]) -> String {
        let (ok, output) = self.terraform(dir, args);
        assert!(ok, "terraform {args:?}:\n{output}");
        output
    }

    /// What the bootstrap step makes before terraform runs, made here through ARM.
    async fn bootstrap(&self) {
        let http = reqwest::Client::builder()
            .add_root_certificate(
                reqwest::Certificate::from_pem(self.arm.ca_cert_pem.as_bytes()).unwrap(),
            )
            .build()
            .unwrap();
        let form = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("grant_type", "client_credentials"),
                ("client_id", CLIENT),
                ("scope", "https://management.azure.com/.default"),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                (
                    "client_assertion",
                    &self.issuer.assertion(SUBJECT, TOKEN_EXCHANGE_AUDIENCE, 600),
                ),
            ])
            .finish();
        let token: Value = http
            .post(format!("{}/{TENANT}/oauth2/v2.0/token", self.arm.base_url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = token["access_token"].as_str().unwrap().to_owned();
        let account = format!(
            "/providers/Microsoft.Storage/storageAccounts/{}",
            self.names.storage_account
        );
        for (id, api, body) in [
            (self.id(""), "2021-04-01", json!({"location": "westeurope"})),
            (
                self.id(&account),
                "2023-05-01",
                json!({"location": "westeurope", "kind": "StorageV2", "sku": {"name": "Standard_ZRS"},
                       "properties": {"allowSharedKeyAccess": false, "minimumTlsVersion": "TLS1_2"}}),
            ),
            (
                self.id(&format!(
                    "{account}/blobServices/default/containers/{}",
                    self.names.state_container
                )),
                "2023-05-01",
                json!({"properties": {"publicAccess": "None"}}),
            ),
        ] {
            let response = http
                .put(format!("{}{id}?api-version={api}", self.arm.base_url))
                .bearer_auth(&token)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert!(
                response.status().is_success(),
                "PUT {id}: {}",
                response.status()
            );
            // A storage account is created asynchronously: follow its Location monitor.
            if let Some(monitor) = response.headers().get("location") {
                let monitor = monitor.to_str().unwrap().to_owned();
                let mut done = false;
                // The operation runs on the stand-in's clock: poll as ARM asks (Retry-After).
                for _ in 0..20 {
                    let reply = http.get(&monitor).bearer_auth(&token).send().await.unwrap();
                    let status = reply.status();
                    if status == reqwest::StatusCode::ACCEPTED {
                        let wait = reply
                            .headers()
                            .get("retry-after")
                            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                            .unwrap_or(1);
                        tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
                        continue;
                    }
                    assert!(status.is_success(), "{monitor}: {status}");
                    done = true;
                    break;
                }
                assert!(done, "{id} never finished provisioning");
            }
        }
    }

    fn exists(&self, id: &str) -> bool {
        self.arm
            .state()
            .resources
            .contains_key(&id.to_ascii_lowercase())
            || self
                .arm
                .state()
                .resource_groups
                .contains_key(&id.to_ascii_lowercase())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exported_network_and_storage_apply_import_and_destroy_against_arm() {
    let bed = Bed::start().await;
    bed.bootstrap().await;
    let dir = bed.workdir("first");
    bed.tf(&dir, &["init", "-input=false", "-no-color"]);

    // The network and storage part of the exported blueprint (with what it depends on).
    let targets = [
        "-target=azurerm_subnet_nat_gateway_association.zone",
        "-target=azurerm_nat_gateway_public_ip_association.zone",
        "-target=azurerm_storage_container.kubeconfigs",
        "-target=azurerm_storage_container.logs",
        "-target=azurerm_storage_container.metrics",
        "-target=azurerm_storage_container.tfstate",
        "-target=azurerm_container_registry.this",
        "-target=azurerm_user_assigned_identity.workload",
    ];
    let mut apply = vec!["apply", "-auto-approve", "-input=false", "-no-color"];
    apply.extend(targets);
    let output = bed.tf(&dir, &apply);
    assert!(output.contains("3 imported"), "{output}");

    let vnet = bed.id(&format!(
        "/providers/Microsoft.Network/virtualNetworks/{}",
        bed.names.virtual_network
    ));
    let subnet_1 = format!("{vnet}/subnets/{}-zone-1", bed.names.prefix);
    for id in [&vnet, &subnet_1] {
        assert!(bed.exists(id), "{id} is not in the ARM stand-in");
        assert_eq!(bed.arm.creations_of(id), 1, "{id}");
    }
    let subnet_doc = bed.arm.state().resources[&subnet_1.to_ascii_lowercase()].clone();
    assert!(
        subnet_doc["properties"]["natGateway"]["id"]
            .as_str()
            .unwrap()
            .contains("/natGateways/"),
        "the subnet is not associated with its NAT gateway: {subnet_doc:#}"
    );
    // The imported resource group was not created again.
    assert_eq!(bed.arm.creations_of(&bed.id("")), 1);

    // Nothing left to do.
    let mut plan = vec!["plan", "-detailed-exitcode", "-input=false", "-no-color"];
    plan.extend(targets);
    let (ok, output) = bed.terraform(&dir, &plan);
    assert!(ok, "a second plan wants changes:\n{output}");

    // A retry that lost the state: creating again is refused by the provider, as the
    // real one refuses ("needs to be imported"), and nothing is created twice.
    let lost = bed.workdir("lost-state");
    bed.tf(&lost, &["init", "-input=false", "-no-color"]);
    let mut retry = vec!["apply", "-auto-approve", "-input=false", "-no-color"];
    retry.push("-target=azurerm_virtual_network.this");
    let (ok, output) = bed.terraform(&lost, &retry);
    assert!(!ok);
    assert!(
        output.contains("already exists - to be managed via Terraform"),
        "{output}"
    );
    assert_eq!(bed.arm.creations_of(&vnet), 1);

    // Destroy removes what apply made (the state's resources, imported ones too).
    bed.tf(
        &dir,
        &["destroy", "-auto-approve", "-input=false", "-no-color"],
    );
    for id in [&vnet, &subnet_1, &bed.id("")] {
        assert!(!bed.exists(id), "{id} survived destroy");
    }
}

/// The whole exported blueprint: the cluster is a managed cluster on the ARM stand-in
/// whose admin credentials (`listClusterAdminCredential`) are the Kubernetes stand-in's,
/// so the `kube_config_raw` output reaches a Kubernetes API server; the workload
/// identities' federated credentials trust the cluster's OIDC issuer; the role
/// assignments name the identities' service principals with the built-in roles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_exported_blueprint_applies_with_credentials_of_the_kubernetes_stand_in() {
    let bed = Bed::start().await;
    let kube = windlass_standins::kube::KubeStandIn::start(Default::default())
        .await
        .unwrap();
    bed.arm.set_managed_cluster_kubeconfig(&kube.kubeconfig());
    bed.bootstrap().await;
    let dir = bed.workdir("cluster");
    bed.tf(&dir, &["init", "-input=false", "-no-color"]);
    let output = bed.tf(
        &dir,
        &["apply", "-auto-approve", "-input=false", "-no-color"],
    );
    assert!(output.contains("Apply complete!"), "{output}");

    let cluster = bed.id(&format!(
        "/providers/Microsoft.ContainerService/managedClusters/{}",
        bed.names.cluster
    ));
    assert_eq!(bed.arm.creations_of(&cluster), 1);
    let state = bed.arm.state();
    let doc = state.resources[&cluster.to_ascii_lowercase()].clone();
    assert_eq!(
        doc["properties"]["dnsPrefix"],
        bed.names.dns_prefix.as_str()
    );
    assert_eq!(doc["properties"]["kubernetesVersion"], "1.33");

    // The kubeconfig terraform hands on is the Kubernetes stand-in's.
    let kubeconfig = bed.tf(&dir, &["output", "-raw", "kube_config_raw"]);
    assert!(
        kubeconfig.contains(&format!("server: {}", kube.url())),
        "{kubeconfig}"
    );

    // Each workload identity's federated credential trusts the cluster's issuer.
    let issuer = bed.tf(&dir, &["output", "-raw", "oidc_issuer_url"]);
    let credentials: Vec<_> = state
        .resources
        .iter()
        .filter(|(k, _)| k.contains("/federatedidentitycredentials/"))
        .map(|(_, doc)| doc)
        .collect();
    assert_eq!(credentials.len(), 3, "{credentials:#?}");
    for credential in &credentials {
        assert_eq!(credential["properties"]["issuer"], issuer.as_str());
    }

    // The six role assignments, each naming an identity ARM made a service principal for.
    let kubelet = doc["properties"]["identityProfile"]["kubeletidentity"]["objectId"]
        .as_str()
        .unwrap()
        .to_owned();
    let assignments: Vec<_> = state
        .role_assignments
        .values()
        .filter(|a| {
            a["properties"]["scope"]
                .as_str()
                .is_some_and(|s| s.contains(&bed.names.resource_group))
        })
        .collect();
    assert_eq!(assignments.len(), 6, "{assignments:#?}");
    for assignment in &assignments {
        let principal = assignment["properties"]["principalId"].as_str().unwrap();
        assert!(
            state.service_principals.contains_key(principal),
            "{principal} is no service principal"
        );
    }
    assert!(
        assignments
            .iter()
            .any(|a| a["properties"]["principalId"] == kubelet.as_str()
                && a["properties"]["roleDefinitionId"]
                    .as_str()
                    .unwrap()
                    .ends_with("7f951dda-4ed3-4680-a7ca-43fe172d538d")),
        "the kubelet identity has no AcrPull: {assignments:#?}"
    );

    // Applied again: nothing to do.
    let (ok, output) = bed.terraform(
        &dir,
        &["plan", "-detailed-exitcode", "-input=false", "-no-color"],
    );
    assert!(ok, "a second plan wants changes:\n{output}");
}
