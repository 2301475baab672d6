//! The helm runner with the real helm v4 binary (`.tools/bin/helm`, installed by
//! scripts/setup.sh): offline template and lint of the local charts in `charts/`,
//! and releases against the Kubernetes API stand-in (not a real cluster: it
//! simulates rollouts, and never readies workloads whose image contains `fail`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;
use windlass_activities::helm::{
    Chart, Helm, HelmError, Installed, Kubeconfig, Recovery, Release, ReleaseStatus,
};
use windlass_standins::{KubeStandIn, KubeStandInConfig};

const CHARTS: &[&str] = &[
    "cert-manager",
    "external-dns",
    "ingress-nginx",
    "karpenter",
    "loki",
    "prometheus",
    "windlass-agent",
];

fn chart(name: &str) -> Chart {
    Chart::Local(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../charts")
            .join(name),
    )
}

fn helm() -> Helm {
    Helm::locate().with_interrupt_grace(Duration::from_secs(5))
}

fn release(name: &str, namespace: &str, chart_name: &str, timeout: Duration) -> Release {
    Release {
        name: name.into(),
        namespace: namespace.into(),
        chart: chart(chart_name),
        timeout,
        wait: true,
        step: Some(format!("test/run/install-{name}")),
        force_conflicts: false,
    }
}

/// The windlass-agent chart's values, as Windlass builds them.
#[derive(Serialize)]
struct AgentValues {
    image: Image,
    #[serde(rename = "serviceAccount")]
    service_account: ServiceAccount,
    #[serde(rename = "clusterId")]
    cluster_id: String,
}

#[derive(Serialize)]
struct Image {
    repository: String,
    tag: String,
}

#[derive(Serialize)]
struct ServiceAccount {
    annotations: BTreeMap<String, String>,
}

const CLIENT_ID: &str = "6a1f0c9e-3b7d-4e1a-9f2c-0d5e8b7a6c41";

fn agent(tag: &str) -> AgentValues {
    AgentValues {
        image: Image {
            repository: "ghcr.io/windlass/agent".into(),
            tag: tag.into(),
        },
        service_account: ServiceAccount {
            annotations: BTreeMap::from([(
                "azure.workload.identity/client-id".into(),
                CLIENT_ID.into(),
            )]),
        },
        cluster_id: "c-123".into(),
    }
}

async fn cluster() -> (KubeStandIn, Kubeconfig) {
    let standin = KubeStandIn::start(
        KubeStandInConfig::default().with_rollout_delay(Duration::from_millis(150)),
    )
    .await
    .expect("start the Kubernetes stand-in");
    let kubeconfig = Kubeconfig::new(standin.kubeconfig());
    (standin, kubeconfig)
}

fn image_of(standin: &KubeStandIn, namespace: &str, name: &str) -> String {
    let deployment = standin
        .get("Deployment", namespace, name)
        .unwrap_or_else(|| panic!("deployment {namespace}/{name} exists"));
    deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn statuses(history: &[windlass_activities::helm::Revision]) -> Vec<(u32, ReleaseStatus)> {
    history
        .iter()
        .map(|r| (r.revision, r.status.clone()))
        .collect()
}

async fn install(
    h: &Helm,
    kubeconfig: &Kubeconfig,
    r: &Release,
    values: &impl Serialize,
) -> Installed {
    h.upgrade_install(kubeconfig, r, values, &mut |_| {}, std::future::pending())
        .await
        .unwrap()
}

#[tokio::test]
async fn every_chart_lints_and_renders_its_upstream_images() {
    let h = helm();
    let expected: &[(&str, &str, &[&str])] = &[
        (
            "cert-manager",
            "Deployment",
            &[
                "quay.io/jetstack/cert-manager-controller:v1.19.1",
                "quay.io/jetstack/cert-manager-webhook:v1.19.1",
            ],
        ),
        (
            "external-dns",
            "Deployment",
            &["registry.k8s.io/external-dns/external-dns:v0.19.0"],
        ),
        (
            "ingress-nginx",
            "Deployment",
            &["registry.k8s.io/ingress-nginx/controller:v1.13.3"],
        ),
        (
            "karpenter",
            "Deployment",
            &["public.ecr.aws/karpenter/controller:1.8.1"],
        ),
        ("loki", "StatefulSet", &["docker.io/grafana/loki:3.5.3"]),
        (
            "prometheus",
            "Deployment",
            &["quay.io/prometheus/prometheus:v3.6.0"],
        ),
        (
            "windlass-agent",
            "Deployment",
            &["ghcr.io/windlass/agent:0.1.0"],
        ),
    ];
    assert_eq!(expected.len(), CHARTS.len(), "every chart is checked");
    // Karpenter refuses to render without a cluster name; the others ignore it.
    let values = json!({
        "settings": {"clusterName": "prod-eu"},
        "serviceAccount": {"annotations": {"azure.workload.identity/client-id": CLIENT_ID}},
    });
    for (name, workload, images) in expected {
        let messages = h.lint(&chart(name), &values).await.unwrap();
        assert!(
            messages.iter().all(|m| m.severity != "ERROR"),
            "{name}: {messages:?}"
        );

        let r = release(name, name, name, Duration::from_secs(60));
        let rendered = h.template(&r, &values).await.unwrap();
        let objects = rendered.objects();
        let rendered_images: Vec<String> = objects
            .iter()
            .filter(|o| o.kind == *workload)
            .flat_map(|o| o.images.clone())
            .collect();
        assert_eq!(rendered_images, *images, "{name}: {objects:?}");
        let account = objects
            .iter()
            .find(|o| o.kind == "ServiceAccount")
            .unwrap_or_else(|| panic!("{name} renders a ServiceAccount"));
        assert!(account.name.starts_with(name), "{name}: {account:?}");
    }
}

#[tokio::test]
async fn rendered_charts_carry_workload_identity_and_chart_specific_objects() {
    let h = helm();
    let agent_release = release(
        "agent",
        "windlass",
        "windlass-agent",
        Duration::from_secs(60),
    );
    let rendered = h.template(&agent_release, &agent("0.3.1")).await.unwrap();
    assert!(
        rendered
            .manifest
            .contains(&format!("azure.workload.identity/client-id: {CLIENT_ID}")),
        "the client id annotates the ServiceAccount"
    );
    assert!(
        rendered
            .manifest
            .contains("azure.workload.identity/use: \"true\"")
    );
    assert_eq!(
        rendered.find("Deployment").unwrap().images,
        ["ghcr.io/windlass/agent:0.3.1"]
    );

    let cm = release(
        "cert-manager",
        "cert-manager",
        "cert-manager",
        Duration::from_secs(60),
    );
    let objects = h.template(&cm, &json!({})).await.unwrap().objects();
    let crds: Vec<&str> = objects
        .iter()
        .filter(|o| o.kind == "CustomResourceDefinition")
        .map(|o| o.name.as_str())
        .collect();
    assert_eq!(
        crds,
        [
            "certificates.cert-manager.io",
            "issuers.cert-manager.io",
            "clusterissuers.cert-manager.io"
        ]
    );
    let without_crds = h
        .template(&cm, &json!({"crds": {"enabled": false}}))
        .await
        .unwrap();
    assert!(without_crds.find("CustomResourceDefinition").is_none());

    let nginx = release(
        "ingress",
        "ingress",
        "ingress-nginx",
        Duration::from_secs(60),
    );
    let kinds: Vec<String> = h
        .template(&nginx, &json!({}))
        .await
        .unwrap()
        .objects()
        .into_iter()
        .map(|o| o.kind)
        .collect();
    assert!(kinds.contains(&"IngressClass".to_string()), "{kinds:?}");
    assert!(kinds.contains(&"Service".to_string()), "{kinds:?}");

    let karpenter = release(
        "karpenter",
        "karpenter",
        "karpenter",
        Duration::from_secs(60),
    );
    let objects = h
        .template(
            &karpenter,
            &json!({"settings": {"clusterName": "prod"}, "serviceAccount": {"annotations": {
                "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/karpenter"}}}),
        )
        .await
        .unwrap();
    assert!(
        objects
            .manifest
            .contains("eks.amazonaws.com/role-arn: arn:aws:iam::123456789012:role/karpenter")
    );
}

#[tokio::test]
async fn a_chart_that_cannot_render_is_a_terminal_error() {
    let h = helm();
    // Karpenter's chart fails on purpose without a cluster name.
    let r = release(
        "karpenter",
        "karpenter",
        "karpenter",
        Duration::from_secs(60),
    );
    let err = h.template(&r, &json!({})).await.unwrap_err();
    assert!(
        matches!(&err, HelmError::InvalidChart { message, .. } if message.contains("settings.clusterName is required")),
        "{err:?}"
    );
    assert!(!err.is_retryable());

    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("templates")).unwrap();
    std::fs::write(
        dir.path().join("Chart.yaml"),
        "apiVersion: v2\nname: broken\nversion: 0.1.0\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("templates/cm.yaml"),
        "kind: {{ .Values.x }\n",
    )
    .unwrap();
    let err = h
        .lint(&Chart::Local(dir.path().into()), &json!({}))
        .await
        .unwrap_err();
    match &err {
        HelmError::Lint(errors) => {
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert!(errors[0].contains("parse error"), "{errors:?}");
        }
        other => panic!("expected a lint failure, got {other:?}"),
    }
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn upgrade_install_deploys_then_a_changed_value_makes_revision_two() {
    let (standin, kubeconfig) = cluster().await;
    let h = helm();
    let r = release(
        "agent",
        "windlass",
        "windlass-agent",
        Duration::from_secs(30),
    );

    let mut lines = Vec::new();
    let first = h
        .upgrade_install(
            &kubeconfig,
            &r,
            &agent("0.1.0"),
            &mut |l| lines.push(l.to_owned()),
            std::future::pending(),
        )
        .await
        .unwrap();
    assert_eq!(first.release.revision, 1);
    assert_eq!(first.release.status, ReleaseStatus::Deployed);
    assert_eq!(first.release.namespace, "windlass");
    assert_eq!(first.recovered, None);
    assert!(
        lines.iter().any(|l| l.contains("STATUS: deployed")),
        "helm's output reaches the log: {lines:?}"
    );
    assert!(
        lines.iter().all(|l| !l.contains(standin.token())),
        "the kubeconfig's token never reaches the log"
    );

    // What helm created, as the cluster sees it: the namespace, the workload,
    // ready, and the service account with its workload identity.
    assert!(standin.get("Namespace", "", "windlass").is_some());
    assert_eq!(
        image_of(&standin, "windlass", "agent"),
        "ghcr.io/windlass/agent:0.1.0"
    );
    let deployment = standin.get("Deployment", "windlass", "agent").unwrap();
    assert_eq!(deployment["status"]["readyReplicas"], 1);
    let account = standin.get("ServiceAccount", "windlass", "agent").unwrap();
    assert_eq!(
        account["metadata"]["annotations"]["azure.workload.identity/client-id"],
        CLIENT_ID
    );

    let second = install(&h, &kubeconfig, &r, &agent("0.2.0")).await;
    assert_eq!(second.release.revision, 2);
    assert_eq!(second.release.status, ReleaseStatus::Deployed);
    assert_eq!(
        image_of(&standin, "windlass", "agent"),
        "ghcr.io/windlass/agent:0.2.0"
    );
    let history = h.history(&kubeconfig, "agent", "windlass").await.unwrap();
    assert_eq!(
        statuses(&history),
        [(1, ReleaseStatus::Superseded), (2, ReleaseStatus::Deployed)]
    );
    assert_eq!(history[1].chart, "windlass-agent-0.1.0");
    let stored: Vec<(u32, String)> = standin
        .helm_releases("windlass")
        .into_iter()
        .map(|r| (r.revision, r.status))
        .collect();
    assert_eq!(
        stored,
        [(1, "superseded".to_string()), (2, "deployed".to_string())],
        "helm keeps its releases as labelled Secrets"
    );

    // Running the same request again (a Temporal retry) is a no-op: the release
    // already holds this chart and these values, so helm makes no new revision.
    let again = install(&h, &kubeconfig, &r, &agent("0.2.0")).await;
    assert_eq!(again.release.revision, 2);
    assert!(again.unchanged);
    assert!(!second.unchanged);
    assert_eq!(standin.helm_releases("windlass").len(), 2);
    assert_eq!(
        image_of(&standin, "windlass", "agent"),
        "ghcr.io/windlass/agent:0.2.0"
    );

    // A rollback puts revision 1's chart and values back (and its record of them), so
    // asking for 0.2.0 again is an upgrade, not a no-op.
    h.rollback(&kubeconfig, &r, 1, &mut |_| {}, std::future::pending())
        .await
        .unwrap();
    assert_eq!(
        image_of(&standin, "windlass", "agent"),
        "ghcr.io/windlass/agent:0.1.0"
    );
    let back = install(&h, &kubeconfig, &r, &agent("0.2.0")).await;
    assert_eq!(back.release.revision, 4);
    assert!(!back.unchanged);
    assert_eq!(
        image_of(&standin, "windlass", "agent"),
        "ghcr.io/windlass/agent:0.2.0"
    );
    // And the rolled-back-to values, asked for once more, are again an upgrade.
    let previous = install(&h, &kubeconfig, &r, &agent("0.1.0")).await;
    assert_eq!(previous.release.revision, 5);
}

#[tokio::test]
async fn a_rollout_that_never_becomes_ready_times_out_and_is_rolled_back() {
    let (standin, kubeconfig) = cluster().await;
    let h = helm();
    let good = release(
        "agent",
        "windlass",
        "windlass-agent",
        Duration::from_secs(30),
    );
    install(&h, &kubeconfig, &good, &agent("0.1.0")).await;

    let bad = Release {
        timeout: Duration::from_secs(2),
        ..good.clone()
    };
    let started = Instant::now();
    let err = h
        .upgrade_install(
            &kubeconfig,
            &bad,
            &agent("fail-0.2.0"),
            &mut |_| {},
            std::future::pending(),
        )
        .await
        .unwrap_err();
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "helm waited for the timeout"
    );
    match &err {
        HelmError::Timeout {
            rolled_back,
            message,
            ..
        } => {
            assert!(rolled_back, "{message}");
            assert!(
                message.contains("Deployment/windlass/agent not ready"),
                "{message}"
            );
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(err.is_retryable());

    let history = h.history(&kubeconfig, "agent", "windlass").await.unwrap();
    assert_eq!(
        statuses(&history),
        [
            (1, ReleaseStatus::Superseded),
            (2, ReleaseStatus::Failed),
            (3, ReleaseStatus::Deployed)
        ]
    );
    assert_eq!(history[2].description, "Rollback to 1");
    assert_eq!(
        image_of(&standin, "windlass", "agent"),
        "ghcr.io/windlass/agent:0.1.0"
    );
    let status = h
        .status(&kubeconfig, "agent", "windlass")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (status.revision, status.status),
        (3, ReleaseStatus::Deployed)
    );
}

/// Starts `helm upgrade` directly and SIGKILLs it while it waits for a rollout
/// that never finishes, as a worker crash would.
async fn kill_helm_mid_operation(
    standin: &KubeStandIn,
    namespace: &str,
    name: &str,
    tag: &str,
    pending: &str,
) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kubeconfig");
    std::fs::write(&config, standin.kubeconfig()).unwrap();
    let mut child = tokio::process::Command::new(helm().program())
        .args(["upgrade", "--install", name])
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../charts/windlass-agent"))
        .args([
            "--namespace",
            namespace,
            "--create-namespace",
            "--wait",
            "--timeout=60s",
        ])
        .args(["--set", &format!("image.tag={tag}")])
        .arg("--kubeconfig")
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Killed while waiting for the rollout: the pending revision is stored and
    // the new pod template applied.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let stored = standin
            .helm_releases(namespace)
            .iter()
            .any(|r| r.name == name && r.status == pending);
        let applied = standin.get("Deployment", namespace, name).is_some_and(|d| {
            d["spec"]["template"]["spec"]["containers"][0]["image"]
                .as_str()
                .is_some_and(|i| i.ends_with(tag))
        });
        if stored && applied {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "helm never reached its wait with a {pending} revision"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.start_kill().unwrap();
    child.wait().await.unwrap();
}

#[tokio::test]
async fn a_release_left_pending_upgrade_is_rolled_back_then_upgraded() {
    let (standin, kubeconfig) = cluster().await;
    let h = helm();
    let r = release(
        "agent",
        "windlass",
        "windlass-agent",
        Duration::from_secs(30),
    );
    install(&h, &kubeconfig, &r, &agent("0.1.0")).await;
    kill_helm_mid_operation(
        &standin,
        "windlass",
        "agent",
        "fail-0.2.0",
        "pending-upgrade",
    )
    .await;
    let stuck = h
        .status(&kubeconfig, "agent", "windlass")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (stuck.revision, stuck.status),
        (2, ReleaseStatus::PendingUpgrade)
    );

    // While the pending revision is young enough to belong to a live helm, it is
    // left alone and the attempt retried later.
    let careful = helm().with_pending_grace(Duration::from_secs(3600));
    let err = careful
        .upgrade_install(
            &kubeconfig,
            &r,
            &agent("0.3.0"),
            &mut |_| {},
            std::future::pending(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, HelmError::PendingOperation { status, .. } if status == "pending-upgrade"),
        "{err:?}"
    );
    assert!(err.is_retryable());

    let mut lines = Vec::new();
    let done = h
        .upgrade_install(
            &kubeconfig,
            &r,
            &agent("0.3.0"),
            &mut |l| lines.push(l.to_owned()),
            std::future::pending(),
        )
        .await
        .unwrap();
    assert_eq!(
        done.recovered,
        Some(Recovery::RolledBack {
            stuck_revision: 2,
            stuck_status: ReleaseStatus::PendingUpgrade,
            to_revision: 1,
        })
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("rolling back to revision 1")),
        "{lines:?}"
    );
    assert_eq!(
        (done.release.revision, done.release.status),
        (4, ReleaseStatus::Deployed)
    );
    assert_eq!(
        image_of(&standin, "windlass", "agent"),
        "ghcr.io/windlass/agent:0.3.0"
    );
    let history = h.history(&kubeconfig, "agent", "windlass").await.unwrap();
    assert_eq!(history[2].description, "Rollback to 1");
}

#[tokio::test]
async fn a_release_left_pending_install_is_uninstalled_then_installed() {
    let (standin, kubeconfig) = cluster().await;
    let h = helm();
    kill_helm_mid_operation(
        &standin,
        "windlass",
        "agent",
        "fail-0.1.0",
        "pending-install",
    )
    .await;
    assert!(standin.get("Deployment", "windlass", "agent").is_some());

    let r = release(
        "agent",
        "windlass",
        "windlass-agent",
        Duration::from_secs(30),
    );
    let done = install(&h, &kubeconfig, &r, &agent("0.1.0")).await;
    assert_eq!(
        done.recovered,
        Some(Recovery::Uninstalled {
            stuck_revision: 1,
            stuck_status: ReleaseStatus::PendingInstall,
        })
    );
    assert_eq!(
        (done.release.revision, done.release.status),
        (1, ReleaseStatus::Deployed)
    );
    assert_eq!(
        image_of(&standin, "windlass", "agent"),
        "ghcr.io/windlass/agent:0.1.0"
    );
}

#[tokio::test]
async fn cancelling_an_upgrade_interrupts_helm_promptly() {
    let (standin, kubeconfig) = cluster().await;
    let h = helm();
    let r = release(
        "agent",
        "windlass",
        "windlass-agent",
        Duration::from_secs(60),
    );
    install(&h, &kubeconfig, &r, &agent("0.1.0")).await;

    let started = Instant::now();
    let err = h
        .upgrade_install(
            &kubeconfig,
            &r,
            &agent("fail-0.2.0"),
            &mut |_| {},
            tokio::time::sleep(Duration::from_millis(800)),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, HelmError::Cancelled(c) if c == "upgrade"),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "cancelled well before the 60 s timeout: {:?}",
        started.elapsed()
    );
    // helm stops cleanly on SIGINT: the interrupted upgrade is failed and rolled
    // back, not left pending.
    let status = h
        .status(&kubeconfig, "agent", "windlass")
        .await
        .unwrap()
        .unwrap();
    assert!(!status.status.is_pending(), "{status:?}");
    assert_eq!(
        image_of(&standin, "windlass", "agent"),
        "ghcr.io/windlass/agent:0.1.0"
    );
}

#[tokio::test]
async fn rollback_uninstall_and_missing_releases() {
    let (standin, kubeconfig) = cluster().await;
    let h = helm();
    assert_eq!(
        h.status(&kubeconfig, "agent", "windlass").await.unwrap(),
        None
    );
    assert!(
        h.history(&kubeconfig, "agent", "windlass")
            .await
            .unwrap()
            .is_empty()
    );

    let r = release(
        "agent",
        "windlass",
        "windlass-agent",
        Duration::from_secs(30),
    );
    install(&h, &kubeconfig, &r, &agent("0.1.0")).await;
    install(&h, &kubeconfig, &r, &agent("0.2.0")).await;
    let rolled = h
        .rollback(&kubeconfig, &r, 1, &mut |_| {}, std::future::pending())
        .await
        .unwrap();
    assert_eq!(
        (rolled.revision, rolled.status),
        (3, ReleaseStatus::Deployed)
    );
    assert_eq!(
        image_of(&standin, "windlass", "agent"),
        "ghcr.io/windlass/agent:0.1.0"
    );

    let err = h
        .rollback(&kubeconfig, &r, 42, &mut |_| {}, std::future::pending())
        .await
        .unwrap_err();
    assert!(!err.is_retryable(), "{err:?}");

    h.uninstall(
        &kubeconfig,
        "agent",
        "windlass",
        &mut |_| {},
        std::future::pending(),
    )
    .await
    .unwrap();
    assert!(standin.get("Deployment", "windlass", "agent").is_none());
    assert!(standin.helm_releases("windlass").is_empty());
    // Uninstalling what is gone is done already (a retried activity).
    h.uninstall(
        &kubeconfig,
        "agent",
        "windlass",
        &mut |_| {},
        std::future::pending(),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn an_unreachable_cluster_is_retryable() {
    let (standin, _) = cluster().await;
    // A kubeconfig for a stand-in that has stopped.
    let kubeconfig = Kubeconfig::new(standin.kubeconfig());
    standin.shutdown().await;
    let h = helm();
    let r = release(
        "agent",
        "windlass",
        "windlass-agent",
        Duration::from_secs(5),
    );
    let err = h
        .upgrade_install(
            &kubeconfig,
            &r,
            &agent("0.1.0"),
            &mut |_| {},
            std::future::pending(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, HelmError::Unreachable { .. }), "{err:?}");
    assert!(err.is_retryable());
}

/// kubectl, next to helm, is how people look at a cluster: the stand-in serves
/// it too, and refuses a wrong token.
#[tokio::test]
async fn kubectl_reads_what_helm_installed() {
    let (standin, kubeconfig) = cluster().await;
    let h = helm();
    let r = release(
        "agent",
        "windlass",
        "windlass-agent",
        Duration::from_secs(30),
    );
    install(&h, &kubeconfig, &r, &agent("0.1.0")).await;

    let kubectl = h.program().with_file_name("kubectl");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kubeconfig");
    std::fs::write(&config, standin.kubeconfig()).unwrap();
    let get = |config: PathBuf, args: &'static [&'static str]| {
        let kubectl = kubectl.clone();
        async move {
            tokio::process::Command::new(kubectl)
                .arg("--kubeconfig")
                .arg(config)
                .args(args)
                .output()
                .await
                .unwrap()
        }
    };
    let out = get(
        config.clone(),
        &[
            "get",
            "deployments",
            "-n",
            "windlass",
            "-l",
            "app.kubernetes.io/instance=agent",
            "-o",
            "json",
        ],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list["items"][0]["metadata"]["name"], "agent");
    assert_eq!(list["items"][0]["status"]["availableReplicas"], 1);

    let out = get(
        config.clone(),
        &["get", "secrets", "-n", "windlass", "-l", "owner=helm"],
    )
    .await;
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("sh.helm.release.v1.agent.v1"), "{table}");

    let wrong = dir.path().join("wrong");
    std::fs::write(
        &wrong,
        standin
            .kubeconfig()
            .replace(standin.token(), "not-the-token"),
    )
    .unwrap();
    let out = get(wrong, &["get", "namespaces"]).await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Unauthorized"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Real clusters' kubeconfigs: a client certificate (AKS admin) and an exec plugin (EKS's
/// `aws eks get-token`, AKS's kubelogin) work for kube-rs and for helm alike.
#[tokio::test]
async fn client_certificate_and_exec_plugin_kubeconfigs_work_for_kube_rs_and_helm() {
    let (standin, _) = cluster().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfigs = [
        (
            "cert",
            standin.client_certificate_kubeconfig("admin").unwrap(),
        ),
        ("exec", standin.exec_kubeconfig(dir.path()).unwrap()),
    ];
    let h = helm();
    for (kind, text) in kubeconfigs {
        let client = windlass_activities::kube::client_from_kubeconfig(&text)
            .await
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        let namespace = format!("via-{kind}");
        windlass_activities::kube::ensure_namespace(&client, &namespace, &BTreeMap::new())
            .await
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert!(standin.get("Namespace", "", &namespace).is_some());
        let r = release(
            "agent",
            &namespace,
            "windlass-agent",
            Duration::from_secs(30),
        );
        install(&h, &Kubeconfig::new(text), &r, &agent("0.1.0")).await;
        assert!(
            standin.get("Deployment", &namespace, "agent").is_some(),
            "{kind}"
        );
    }
    // The token-less requests were authenticated by what each kubeconfig carries.
    assert!(standin.requests().iter().all(|r| r.status != 401));
}

/// Windlass's own writes (namespace, service secrets) ride out throttling and a transient
/// server error within a bounded retry, and a webhook not serving yet fails helm with a
/// retryable, typed verdict.
#[tokio::test]
async fn throttling_transient_errors_and_a_webhook_not_ready_are_retried_within_bounds() {
    let (standin, kubeconfig) = cluster().await;
    let client = windlass_activities::kube::client_from_kubeconfig(&standin.kubeconfig())
        .await
        .unwrap();
    standin.update_settings(|s| {
        s.throttle_next = 2;
        s.retry_after_seconds = 1;
        s.fail_next = 1;
    });
    windlass_activities::kube::ensure_namespace(&client, "apps", &BTreeMap::new())
        .await
        .unwrap();
    let statuses: Vec<u16> = standin.requests().iter().map(|r| r.status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        2,
        "{statuses:?}"
    );
    assert!(statuses.contains(&500), "{statuses:?}");
    assert!(standin.get("Namespace", "", "apps").is_some());

    // cert-manager's webhook configuration exists, but its pods are not serving yet.
    standin.update_settings(|s| s.webhook_not_ready_ms = 60_000);
    let webhook = json!({"apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration", "metadata": {"name": "cert-manager-webhook"},
        "webhooks": [{"name": "webhook.cert-manager.io", "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "clientConfig": {"service": {"name": "cert-manager-webhook", "namespace": "cert-manager", "port": 443}},
            "rules": [{"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"], "resources": ["*"]}]}]});
    let api: kube::Api<kube::api::DynamicObject> = kube::Api::all_with(
        client.clone(),
        &kube::discovery::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
            "admissionregistration.k8s.io",
            "v1",
            "ValidatingWebhookConfiguration",
        )),
    );
    api.create(
        &Default::default(),
        &serde_json::from_value(webhook).unwrap(),
    )
    .await
    .unwrap();
    let h = helm();
    let r = release("agent", "apps", "windlass-agent", Duration::from_secs(30));
    let error = h
        .upgrade_install(
            &kubeconfig,
            &r,
            &agent("0.1.0"),
            &mut |_| {},
            std::future::pending(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            windlass_activities::helm::HelmError::WebhookNotReady { .. }
        ),
        "{error:?}"
    );
    assert!(error.is_retryable());
    assert!(
        error.to_string().contains("webhook.cert-manager.io"),
        "{error}"
    );
}

/// helm 4 applies server-side: a field another manager changed (an admission policy, a
/// person with `kubectl edit`) conflicts. A user's chart fails with the other manager
/// named; a release Windlass owns takes the field back with `--force-conflicts`.
#[tokio::test]
async fn a_field_another_manager_changed_conflicts_unless_windlass_owns_the_release() {
    let (standin, kubeconfig) = cluster().await;
    let h = helm();
    let mut r = release(
        "agent",
        "windlass",
        "windlass-agent",
        Duration::from_secs(30),
    );
    install(&h, &kubeconfig, &r, &agent("0.1.0")).await;
    let client = windlass_activities::kube::client_from_kubeconfig(&standin.kubeconfig())
        .await
        .unwrap();
    let deployments: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
        kube::Api::namespaced(client, "windlass");
    // Someone edits the image by hand: an ordinary patch, owned by "kubectl-edit".
    let edit = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "agent", "image": "registry.example/patched:1"}]}}}});
    deployments
        .patch(
            "agent",
            &kube::api::PatchParams {
                field_manager: Some("kubectl-edit".into()),
                ..Default::default()
            },
            &kube::api::Patch::Strategic(&edit),
        )
        .await
        .unwrap();

    let error = h
        .upgrade_install(
            &kubeconfig,
            &r,
            &agent("0.1.1"),
            &mut |_| {},
            std::future::pending(),
        )
        .await
        .unwrap_err();
    match &error {
        windlass_activities::helm::HelmError::Conflict {
            managers, message, ..
        } => {
            assert_eq!(managers, &["kubectl-edit"], "{message}");
            assert!(message.contains("image"), "{message}");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(!error.is_retryable());
    assert!(image_of(&standin, "windlass", "agent").contains("patched"));

    r.force_conflicts = true;
    install(&h, &kubeconfig, &r, &agent("0.1.1")).await;
    assert_eq!(
        image_of(&standin, "windlass", "agent"),
        "ghcr.io/windlass/agent:0.1.1"
    );
}

/// A deployment's service costs one helm process: the upgrade itself. What the release
/// holds (pending revisions, the values it was installed with, its status afterwards) is
/// read from helm's storage Secrets in process; a repeat with the same chart and values
/// starts no helm at all. Counted by a wrapper that records each invocation.
#[tokio::test]
async fn one_upgrade_starts_one_helm_process_and_a_repeat_none() {
    let dir = tempfile::tempdir().unwrap();
    let calls = dir.path().join("calls");
    let wrapper = dir.path().join("helm");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho \"$1\" >> '{}'\nexec '{}' \"$@\"\n",
            calls.display(),
            Helm::locate().program().display()
        ),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let h = Helm::new(&wrapper).with_interrupt_grace(Duration::from_secs(5));
    let (_standin, kubeconfig) = cluster().await;
    let r = release(
        "agent",
        "windlass-system",
        "windlass-agent",
        Duration::from_secs(60),
    );
    let called = || -> Vec<String> {
        std::fs::read_to_string(&calls)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    };

    let first = install(&h, &kubeconfig, &r, &agent("1.0.0")).await;
    assert_eq!(first.release.revision, 1);
    assert_eq!(first.release.status, ReleaseStatus::Deployed);
    assert_eq!(called(), ["upgrade"]);

    let again = install(&h, &kubeconfig, &r, &agent("1.0.0")).await;
    assert!(again.unchanged);
    assert_eq!(called(), ["upgrade"], "a repeat starts no helm");

    let second = install(&h, &kubeconfig, &r, &agent("1.1.0")).await;
    assert_eq!(second.release.revision, 2);
    assert_eq!(called(), ["upgrade", "upgrade"]);
    let history = h
        .history(&kubeconfig, "agent", "windlass-system")
        .await
        .unwrap();
    assert_eq!(
        statuses(&history),
        [(1, ReleaseStatus::Superseded), (2, ReleaseStatus::Deployed)]
    );
    assert!(
        history[1].chart.starts_with("windlass-agent-"),
        "{history:?}"
    );
}

#[tokio::test]
async fn helm_processes_start_only_when_they_fit_in_the_memory_budget() {
    // Room for one helm at a time: the second release waits for the first to finish.
    let budget = windlass_activities::memory_budget::MemoryBudget::for_helm(
        windlass_activities::memory_budget::HELM_FIRST_GUESS_MB,
    );
    let h = helm().with_memory_budget(budget.clone());
    let (standin, kubeconfig) = cluster().await;
    let first = release("one", "budget", "windlass-agent", Duration::from_secs(60));
    let second = release("two", "budget", "windlass-agent", Duration::from_secs(60));
    let mut second_log = Vec::new();
    let values = agent("1.0.0");
    let mut quiet = |_: &str| {};
    let (a, b) = tokio::join!(
        h.upgrade_install(
            &kubeconfig,
            &first,
            &values,
            &mut quiet,
            std::future::pending()
        ),
        async {
            // Let the first one take the room.
            tokio::time::sleep(Duration::from_millis(50)).await;
            h.upgrade_install(
                &kubeconfig,
                &second,
                &values,
                &mut |line| second_log.push(line.to_owned()),
                std::future::pending(),
            )
            .await
        }
    );
    assert_eq!(a.unwrap().release.status, ReleaseStatus::Deployed);
    assert_eq!(b.unwrap().release.status, ReleaseStatus::Deployed);
    assert!(
        second_log
            .iter()
            .any(|l| l.starts_with("waiting for memory to start helm")),
        "the second step's log says why it waited: {second_log:?}"
    );
    assert_eq!(
        image_of(&standin, "budget", "two"),
        "ghcr.io/windlass/agent:1.0.0"
    );
    assert_eq!(budget.in_use_mb(), 0, "both gave their room back");
}
