//! The conformance suite of the cluster seam (`windlass_activities::clusters::clouds`):
//! every cloud passes the same tests, each against its stand-in or emulator, asserting
//! what the cloud then holds (a second look through a fresh grant of access, the
//! Kubernetes stand-in answering the kubeconfig), not what the implementation reports.
//!
//! `for_every_cloud!` runs each test once per cloud, as the store's `on_both_databases!`
//! runs each store test on both databases. A new cloud adds its bed below and one line
//! to the macro.

use std::path::Path;

use uuid::Uuid;
use windlass_activities::aws::StandInCredentials;
use windlass_activities::azure_access::AzureConnector;
use windlass_activities::clusters::AwsClients;
use windlass_activities::clusters::clouds::{self, ClusterCloud, Step};
use windlass_core::cloud_accounts::CloudProvider;
use windlass_core::clusters::{ClusterSpec, NetworkSpec, NodePoolSpec};
use windlass_core::workload_identity::WorkloadSubject;
use windlass_standins::eks_versions::EksVersionsStandIn;
use windlass_standins::kube::{KubeStandIn, KubeStandInConfig};
use windlass_workflows::cluster_contracts::AwsTarget;
use windlass_workflows::contracts::AzureTarget;

use crate::support::{AwsBed, Stack};

/// One cloud account as the suite uses it: the access a worker has to it, a cluster of
/// it, and handles on its stand-ins.
struct CloudBed {
    access: Access,
    cluster: ClusterSpec,
    /// Makes the cloud's version listing offer these.
    offer: Offer,
    /// The kubeconfig as terraform publishes it for this cloud's clusters, naming the
    /// Kubernetes stand-in.
    published_kubeconfig: String,
    /// The stand-ins, kept running.
    _parts: Box<dyn std::any::Any>,
}

/// Sets the versions a cloud's listing offers.
type Offer = Box<dyn Fn(&[&str])>;

enum Access {
    Azure(Box<AzureConnector>, AzureTarget),
    Aws(AwsClients, AwsTarget),
}

impl CloudBed {
    fn cloud(&self) -> Box<dyn ClusterCloud + '_> {
        match &self.access {
            Access::Azure(connector, target) => clouds::azure(connector, target),
            Access::Aws(clients, target) => clouds::aws(clients, target),
        }
    }

    /// A subscription of a customer's tenant in which Windlass's platform application
    /// is trusted (its federated credential names the platform subject) and Owner.
    async fn azure() -> Self {
        let stack = Stack::with_clusters_without_worker().await;
        let (tenant, subscription) = (Uuid::new_v4().to_string(), Uuid::new_v4().to_string());
        let application = Uuid::new_v4().to_string();
        stack.azure.seed_customer_tenant(
            &tenant,
            &subscription,
            &application,
            stack.issuer.issuer(),
            &WorkloadSubject::Platform.to_string(),
        );
        let target = AzureTarget {
            organization_id: Uuid::new_v4(),
            cloud_account_id: Uuid::new_v4(),
            tenant_id: tenant,
            subscription_id: subscription,
            setup_identity_client_id: application,
        };
        let connector = AzureConnector::new(stack.azure_client_config(), stack.issuer.clone());
        let cluster = cluster(CloudProvider::Azure, "westeurope");
        // What AKS's admin credential listing returns: a credential of the cluster's own.
        let published_kubeconfig = stack.clusters.as_ref().unwrap().kube.kubeconfig();
        let stack = std::rc::Rc::new(stack);
        let offer = {
            let stack = stack.clone();
            Box::new(move |versions: &[&str]| {
                stack.azure.set_kubernetes_versions("westeurope", versions)
            })
        };
        Self {
            access: Access::Azure(Box::new(connector), target),
            cluster,
            offer,
            published_kubeconfig,
            _parts: Box::new(stack),
        }
    }

    /// moto's account behind the stand-in that enforces the role's trust policy, with a
    /// role trusting the organisation's ExternalId.
    async fn aws() -> Self {
        let kube = KubeStandIn::start(KubeStandInConfig::default())
            .await
            .unwrap();
        let aws = AwsBed::start().await;
        kube.accept_eks_tokens_from(&aws.sts.endpoint()).unwrap();
        let eks_versions = EksVersionsStandIn::start(&[]).await.unwrap();
        let organization_id = Uuid::new_v4();
        let role_arn = aws.role_trusting(&[organization_id]).await;
        let target = AwsTarget {
            organization_id,
            cloud_account_id: Uuid::new_v4(),
            account_id: windlass_standins::moto::ACCOUNT_ID.to_owned(),
            role_arn,
        };
        let clients = AwsClients::new(
            Some(aws.sts.endpoint()),
            Some(eks_versions.endpoint()),
            Some(StandInCredentials::moto()),
        )
        .await;
        let published_kubeconfig = eks_kubeconfig(&kube, "eu-west-3");
        let eks_versions = std::rc::Rc::new(eks_versions);
        let offer = {
            let eks_versions = eks_versions.clone();
            Box::new(move |versions: &[&str]| eks_versions.set_versions(versions))
        };
        Self {
            access: Access::Aws(clients, target),
            cluster: cluster(CloudProvider::Aws, "eu-west-3"),
            offer,
            published_kubeconfig,
            _parts: Box::new((aws, eks_versions, kube)),
        }
    }
}

fn cluster(provider: CloudProvider, region: &str) -> ClusterSpec {
    ClusterSpec {
        id: Uuid::new_v4(),
        organization_id: Uuid::new_v4(),
        cloud_account_id: Uuid::new_v4(),
        provider,
        name: format!("conformance-{}", &Uuid::new_v4().simple().to_string()[..6]),
        region: region.into(),
        kubernetes_version: "1.33".into(),
        node_pool_version: None,
        network: NetworkSpec::default(),
        node_pools: vec![NodePoolSpec::default_system_pool(provider)],
        maintenance_window: Default::default(),
        placement: None,
        environment_types: Vec::new(),
        created_at: chrono::Utc::now(),
    }
}

/// An EKS cluster's kubeconfig as the blueprint's output writes it: its users run
/// `aws eks get-token`.
fn eks_kubeconfig(kube: &KubeStandIn, region: &str) -> String {
    use base64::Engine as _;
    let ca = base64::engine::general_purpose::STANDARD.encode(kube.ca_cert_pem());
    format!(
        r#"apiVersion: v1
kind: Config
current-context: eks
clusters:
- name: eks
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: eks
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: aws
      args: ["eks", "get-token", "--cluster-name", "conformance", "--region", "{region}", "--output", "json"]
contexts:
- name: eks
  context: {{cluster: eks, user: eks}}
"#,
        server = kube.url()
    )
}

macro_rules! for_every_cloud {
    ($($test:ident),* $(,)?) => {
        mod azure {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test(&super::CloudBed::azure().await).await;
                }
            )*
        }
        mod aws {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test(&super::CloudBed::aws().await).await;
                }
            )*
        }
    };
}

for_every_cloud!(
    storage_is_made_once_and_found_again,
    storage_keeps_what_is_written_in_separate_containers,
    deleting_storage_takes_everything_and_says_whether_it_was_there,
    offered_versions_are_what_the_cloud_lists,
    terraform_runs_on_federated_credentials_in_private_files,
    a_published_kubeconfig_is_usable_against_the_cluster,
);

async fn storage_is_made_once_and_found_again(bed: &CloudBed) {
    let cloud = bed.cloud();
    let step = Step::outside_activity();
    assert_eq!(
        cloud.locate_storage(step, &bed.cluster).await.unwrap(),
        None,
        "nothing before the bootstrap"
    );
    let made = cloud.bootstrap_storage(step, &bed.cluster).await.unwrap();
    let again = cloud.bootstrap_storage(step, &bed.cluster).await.unwrap();
    assert_eq!(made, again, "a second bootstrap changes nothing");
    assert_eq!(
        cloud.locate_storage(step, &bed.cluster).await.unwrap(),
        Some(made)
    );
}

async fn storage_keeps_what_is_written_in_separate_containers(bed: &CloudBed) {
    let cloud = bed.cloud();
    let storage = cloud
        .bootstrap_storage(Step::outside_activity(), &bed.cluster)
        .await
        .unwrap();
    let names = [
        storage.state_container.as_str(),
        storage.kubeconfigs_container.as_str(),
    ];
    let [state, kubeconfigs]: [_; 2] = cloud
        .containers(&storage, &names)
        .await
        .unwrap()
        .try_into()
        .unwrap_or_else(|_| panic!("one store per name"));
    for store in [&state, &kubeconfigs] {
        store.ensure_exists().await.unwrap();
    }
    state.put("cluster.tfstate", b"{}".to_vec()).await.unwrap();
    assert!(state.create_if_absent("lock", b"a".to_vec()).await.unwrap());
    assert!(
        !state.create_if_absent("lock", b"b".to_vec()).await.unwrap(),
        "a second create of the same object is refused"
    );
    assert_eq!(
        kubeconfigs
            .get("cluster.tfstate")
            .await
            .unwrap()
            .map(|o| o.content),
        None,
        "the containers are separate"
    );

    // Read back through a fresh grant of access, as the next step would.
    let [reread]: [_; 1] = cloud
        .containers(&storage, &names[..1])
        .await
        .unwrap()
        .try_into()
        .unwrap_or_else(|_| panic!("one store per name"));
    assert_eq!(
        &reread
            .get("cluster.tfstate")
            .await
            .unwrap()
            .unwrap()
            .content[..],
        b"{}"
    );
    let lock = reread.get("lock").await.unwrap().unwrap();
    assert_eq!(&lock.content[..], b"a");
    assert!(
        reread
            .delete_if_unchanged("lock", &lock.etag)
            .await
            .unwrap()
    );
    assert!(reread.get("lock").await.unwrap().is_none());
}

async fn deleting_storage_takes_everything_and_says_whether_it_was_there(bed: &CloudBed) {
    let cloud = bed.cloud();
    let step = Step::outside_activity();
    let storage = cloud.bootstrap_storage(step, &bed.cluster).await.unwrap();
    let state = cloud
        .containers(&storage, &[&storage.state_container])
        .await
        .unwrap()
        .remove(0);
    state.ensure_exists().await.unwrap();
    state.put("cluster.tfstate", b"{}".to_vec()).await.unwrap();
    state.put("cluster.tfstate", b"{ }".to_vec()).await.unwrap();

    assert!(cloud.delete_storage(step, &bed.cluster).await.unwrap());
    assert_eq!(
        cloud.locate_storage(step, &bed.cluster).await.unwrap(),
        None
    );
    assert!(
        !cloud.delete_storage(step, &bed.cluster).await.unwrap(),
        "a second deletion finds nothing"
    );
}

async fn offered_versions_are_what_the_cloud_lists(bed: &CloudBed) {
    (bed.offer)(&["1.31", "1.32", "1.33"]);
    let mut offered = bed
        .cloud()
        .offered_versions(Step::outside_activity(), &bed.cluster.region)
        .await
        .unwrap();
    offered.sort();
    let minors: Vec<String> = offered
        .iter()
        .filter_map(|v| windlass_core::clusters::parse_minor_version(v))
        .map(|(major, minor)| format!("{major}.{minor}"))
        .collect();
    assert_eq!(minors, ["1.31", "1.32", "1.33"], "{offered:?}");
}

async fn terraform_runs_on_federated_credentials_in_private_files(bed: &CloudBed) {
    let dir = tempfile::tempdir().unwrap();
    let credentials = bed.cloud().terraform_credentials(dir.path()).await.unwrap();
    let env = credentials.env();
    for (name, _) in env {
        assert!(
            ![
                "ARM_CLIENT_SECRET",
                "ARM_CLIENT_CERTIFICATE_PASSWORD",
                "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY",
                "AWS_SESSION_TOKEN"
            ]
            .contains(&name.as_str()),
            "terraform is handed a secret as {name}"
        );
    }
    let written = files_in(dir.path());
    assert!(
        !written.is_empty(),
        "the federated credential is a file terraform reads"
    );
    for file in &written {
        assert!(
            env.iter().any(|(_, value)| Path::new(value) == file)
                || env.iter().any(|(_, value)| std::fs::read_to_string(value)
                    .is_ok_and(|c| c.contains(&file.display().to_string()))),
            "{} is written but terraform is not told of it",
            file.display()
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(file).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{} is readable by others", file.display());
    }
    assert!(
        credentials.renews(),
        "short-lived credentials are renewed while terraform runs"
    );
    drop(credentials);
    assert_eq!(
        files_in(dir.path()),
        Vec::<std::path::PathBuf>::new(),
        "the files go with the credentials"
    );
}

fn files_in(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

async fn a_published_kubeconfig_is_usable_against_the_cluster(bed: &CloudBed) {
    let usable = bed
        .cloud()
        .kubeconfig_for_use(bed.published_kubeconfig.clone())
        .await
        .unwrap();
    assert!(
        !usable.contains("exec:"),
        "no command runs on the worker: {usable}"
    );
    // Checked by a client nobody here wrote: the real kubectl.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("kubeconfig");
    std::fs::write(&file, &usable).unwrap();
    let kubectl = crate::support::repo_root().join(".tools/bin/kubectl");
    let out = tokio::process::Command::new(&kubectl)
        .arg("--kubeconfig")
        .arg(&file)
        .args(["get", "namespaces", "-o", "name"])
        .output()
        .await
        .expect("kubectl: run scripts/setup.sh");
    assert!(
        out.status.success(),
        "kubectl refused the kubeconfig: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("namespace/default"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
