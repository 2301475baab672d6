//! The Kubernetes stand-in driven by the real kubectl (a client nobody here wrote): what it
//! accepts, prints and waits for is a fair check of the stand-in's protocol, including
//! its failure modes (server-side apply conflicts, validation, throttling, Terminating
//! namespaces, failed Jobs).

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use serde_json::Value;
use windlass_standins::kube::{KubeStandIn, KubeStandInConfig};

/// `.tools/bin/kubectl` (what `scripts/setup.sh` installs) above this crate.
fn kubectl_program() -> PathBuf {
    let mut dir = Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    while let Some(d) = dir {
        let candidate = d.join(".tools/bin/kubectl");
        if candidate.is_file() {
            return candidate;
        }
        dir = d.parent().map(PathBuf::from);
    }
    PathBuf::from("kubectl")
}

struct Kubectl {
    standin: KubeStandIn,
    _dir: tempfile::TempDir,
    config: PathBuf,
}

impl Kubectl {
    async fn start() -> Self {
        let standin = KubeStandIn::start(
            KubeStandInConfig::default().with_rollout_delay(Duration::from_millis(200)),
        )
        .await
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("kubeconfig");
        std::fs::write(&config, standin.kubeconfig()).unwrap();
        Self {
            standin,
            _dir: dir,
            config,
        }
    }

    async fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        use tokio::io::AsyncWriteExt as _;
        let mut child = tokio::process::Command::new(kubectl_program())
            .arg("--kubeconfig")
            .arg(&self.config)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("kubectl runs");
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).await.unwrap();
        }
        drop(input);
        tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .expect("kubectl finishes within a minute")
            .unwrap()
    }

    /// Runs kubectl and expects success; returns stdout.
    async fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.run(args, stdin).await;
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs kubectl and expects failure; returns stderr.
    async fn fails(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.run(args, stdin).await;
        assert!(
            !out.status.success(),
            "kubectl {args:?} should have failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).unwrap()
    }
}

fn deployment(replicas: u32, image: &str) -> String {
    format!(
        r#"{{"apiVersion": "apps/v1", "kind": "Deployment",
  "metadata": {{"name": "web", "namespace": "default", "labels": {{"app": "web"}}}},
  "spec": {{"replicas": {replicas}, "selector": {{"matchLabels": {{"app": "web"}}}},
    "strategy": {{"type": "RollingUpdate", "rollingUpdate": {{"maxUnavailable": 0, "maxSurge": 1}}}},
    "template": {{"metadata": {{"labels": {{"app": "web"}}}},
      "spec": {{"containers": [{{"name": "web", "image": "{image}"}}]}}}}}}}}"#
    )
}

#[tokio::test]
async fn apply_get_rollout_status_wait_and_delete() {
    let k = Kubectl::start().await;
    let applied = k
        .ok(&["apply", "-f", "-"], Some(&deployment(2, "web:1")))
        .await;
    assert!(applied.contains("deployment.apps/web created"), "{applied}");
    let status = k
        .ok(
            &["rollout", "status", "deployment/web", "--timeout=30s"],
            None,
        )
        .await;
    assert!(status.contains("successfully rolled out"), "{status}");
    k.ok(
        &[
            "wait",
            "--for=condition=Available",
            "deployment/web",
            "--timeout=30s",
        ],
        None,
    )
    .await;
    let got: Value = serde_json::from_str(
        &k.ok(
            &[
                "get",
                "deployment",
                "web",
                "-o",
                "json",
                "--show-managed-fields",
            ],
            None,
        )
        .await,
    )
    .unwrap();
    assert_eq!(got["status"]["availableReplicas"], 2);
    // kubectl's client-side apply is an ordinary patch: it owns what it set.
    let managers: Vec<&str> = got["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["manager"].as_str().unwrap())
        .collect();
    assert!(
        managers.contains(&"kubectl-client-side-apply"),
        "{managers:?}"
    );

    // A second apply changes the image: a new rollout, which kubectl follows too.
    let applied = k
        .ok(&["apply", "-f", "-"], Some(&deployment(2, "web:2")))
        .await;
    assert!(
        applied.contains("deployment.apps/web configured"),
        "{applied}"
    );
    k.ok(
        &["rollout", "status", "deployment/web", "--timeout=30s"],
        None,
    )
    .await;

    let deleted = k.ok(&["delete", "deployment", "web"], None).await;
    assert!(
        deleted.contains("deployment.apps \"web\" deleted"),
        "{deleted}"
    );
    assert!(k.standin.get("Deployment", "default", "web").is_none());
    let missing = k.fails(&["get", "deployment", "web"], None).await;
    assert!(missing.contains("NotFound"), "{missing}");
}

#[tokio::test]
async fn a_stuck_update_keeps_the_old_pods_and_rollout_status_reports_the_deadline() {
    let k = Kubectl::start().await;
    k.ok(&["apply", "-f", "-"], Some(&deployment(2, "web:1")))
        .await;
    k.ok(
        &["rollout", "status", "deployment/web", "--timeout=30s"],
        None,
    )
    .await;
    let mut stuck = deployment(2, "web:fail-pull");
    stuck = stuck.replace(
        r#""replicas": 2,"#,
        r#""replicas": 2, "progressDeadlineSeconds": 1,"#,
    );
    k.ok(&["apply", "-f", "-"], Some(&stuck)).await;
    let error = k
        .fails(
            &["rollout", "status", "deployment/web", "--timeout=30s"],
            None,
        )
        .await;
    assert!(error.contains("exceeded its progress deadline"), "{error}");
    let got = k.standin.get("Deployment", "default", "web").unwrap();
    // maxUnavailable: 0 keeps both old pods serving while the new one cannot start.
    assert_eq!(got["status"]["availableReplicas"], 2, "{got:#}");
    assert_eq!(got["status"]["updatedReplicas"], 1);
}

#[tokio::test]
async fn server_side_apply_conflicts_name_the_other_manager_until_forced() {
    let k = Kubectl::start().await;
    let mut first: Value = serde_json::from_str(&deployment(2, "web:1")).unwrap();
    first["metadata"]["annotations"] = serde_json::json!({"owner": "team-a"});
    k.ok(
        &[
            "apply",
            "--server-side",
            "--field-manager=team-a",
            "-f",
            "-",
        ],
        Some(&first.to_string()),
    )
    .await;
    // Another manager applying a different replica count conflicts with team-a.
    let conflict = k
        .fails(
            &[
                "apply",
                "--server-side",
                "--field-manager=team-b",
                "-f",
                "-",
            ],
            Some(&deployment(3, "web:1")),
        )
        .await;
    assert!(conflict.contains("conflict"), "{conflict}");
    assert!(conflict.contains("team-a"), "{conflict}");
    assert!(conflict.contains(".spec.replicas"), "{conflict}");
    assert_eq!(
        k.standin.get("Deployment", "default", "web").unwrap()["spec"]["replicas"],
        2
    );
    // The same values are shared ownership, not a conflict.
    k.ok(
        &[
            "apply",
            "--server-side",
            "--field-manager=team-b",
            "-f",
            "-",
        ],
        Some(&deployment(2, "web:1")),
    )
    .await;
    k.ok(
        &[
            "apply",
            "--server-side",
            "--field-manager=team-b",
            "--force-conflicts",
            "-f",
            "-",
        ],
        Some(&deployment(3, "web:1")),
    )
    .await;
    let got = k.standin.get("Deployment", "default", "web").unwrap();
    assert_eq!(got["spec"]["replicas"], 3);
    let team_a = got["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["manager"] == "team-a")
        .cloned()
        .unwrap();
    assert!(
        team_a["fieldsV1"]["f:spec"].get("f:replicas").is_none(),
        "the forced field left team-a: {team_a:#}"
    );
    // team-a stops applying its annotation (its alone: it goes) and the label (team-b
    // applies it too: it stays), and no longer mentions replicas (team-b's now).
    let mut less: Value = serde_json::from_str(&deployment(2, "web:1")).unwrap();
    less["metadata"]["labels"] = serde_json::json!({});
    less["spec"].as_object_mut().unwrap().remove("replicas");
    k.ok(
        &[
            "apply",
            "--server-side",
            "--field-manager=team-a",
            "-f",
            "-",
        ],
        Some(&less.to_string()),
    )
    .await;
    let got = k.standin.get("Deployment", "default", "web").unwrap();
    assert!(
        got["metadata"]["annotations"].get("owner").is_none(),
        "{got:#}"
    );
    assert_eq!(got["metadata"]["labels"]["app"], "web", "{got:#}");
    assert_eq!(got["spec"]["replicas"], 3);
}

#[tokio::test]
async fn invalid_objects_get_the_api_servers_422() {
    let k = Kubectl::start().await;
    // (`kubectl create service` would send protobuf, which the stand-in decodes for
    // Secrets, ConfigMaps and Namespaces only; `create -f` sends JSON.)
    let service = r#"{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "2fa"},
        "spec": {"ports": [{"port": 80}]}}"#;
    let error = k.fails(&["create", "-f", "-"], Some(service)).await;
    assert!(
        error.contains("The Service \"2fa\" is invalid: metadata.name: Invalid value: \"2fa\": a DNS-1035 label"),
        "{error}"
    );
    let long = "n".repeat(53);
    let cron_job = format!(
        r#"{{"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {{"name": "{long}"}},
        "spec": {{"schedule": "0 3 * * *", "jobTemplate": {{"spec": {{"template": {{"spec": {{
          "restartPolicy": "Never", "containers": [{{"name": "c", "image": "busybox"}}]}}}}}}}}}}}}"#
    );
    let error = k.fails(&["create", "-f", "-"], Some(&cron_job)).await;
    assert!(
        error.contains("must be no more than 52 characters"),
        "{error}"
    );
    // A Deployment's selector cannot change.
    k.ok(&["apply", "-f", "-"], Some(&deployment(1, "web:1")))
        .await;
    let moved = deployment(1, "web:1")
        .replace(
            r#""selector": {"matchLabels": {"app": "web"}}"#,
            r#""selector": {"matchLabels": {"app": "web", "tier": "front"}}"#,
        )
        .replace(
            r#""template": {"metadata": {"labels": {"app": "web"}}"#,
            r#""template": {"metadata": {"labels": {"app": "web", "tier": "front"}}"#,
        );
    let error = k.fails(&["apply", "-f", "-"], Some(&moved)).await;
    assert!(error.contains("spec.selector"), "{error}");
    assert!(error.contains("field is immutable"), "{error}");
}

#[tokio::test]
async fn a_failing_job_is_failed_for_kubectl_wait() {
    let k = Kubectl::start().await;
    k.standin
        .update_settings(|s| s.job_failure_marker = Some("crash".into()));
    let job = r#"{"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate"},
        "spec": {"backoffLimit": 1, "template": {"spec": {"restartPolicy": "Never",
          "containers": [{"name": "migrate", "image": "tools:crash", "command": ["false"]}]}}}}"#;
    k.ok(&["create", "-f", "-"], Some(job)).await;
    k.ok(
        &[
            "wait",
            "--for=condition=Failed",
            "job/migrate",
            "--timeout=30s",
        ],
        None,
    )
    .await;
    let job = k.standin.get("Job", "default", "migrate").unwrap();
    let conditions: Vec<&str> = job["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(conditions, ["FailureTarget", "Failed"]);
}

#[tokio::test]
async fn a_deleted_namespace_is_terminating_and_takes_nothing_new() {
    let k = Kubectl::start().await;
    k.standin
        .update_settings(|s| s.namespace_termination_ms = 1500);
    // Sent as protobuf by kubectl's typed clientset.
    k.ok(&["create", "namespace", "apps"], None).await;
    k.ok(&["create", "configmap", "settings", "-n", "apps"], None)
        .await;
    k.ok(&["delete", "namespace", "apps", "--wait=false"], None)
        .await;
    let phase = k
        .ok(
            &["get", "namespace", "apps", "-o", "jsonpath={.status.phase}"],
            None,
        )
        .await;
    assert_eq!(phase, "Terminating");
    let refused = k
        .fails(&["create", "configmap", "more", "-n", "apps"], None)
        .await;
    assert!(
        refused.contains("because it is being terminated"),
        "{refused}"
    );
    assert!(
        refused.contains("Forbidden") || refused.contains("forbidden"),
        "{refused}"
    );
    // kubectl's own wait sees it go.
    k.ok(
        &["wait", "--for=delete", "namespace/apps", "--timeout=30s"],
        None,
    )
    .await;
    assert!(k.standin.get("Namespace", "", "apps").is_none());
}

#[tokio::test]
async fn kubectl_rides_out_throttling_and_transient_errors() {
    let k = Kubectl::start().await;
    // client-go retries a 429 after its Retry-After.
    k.standin.update_settings(|s| {
        s.throttle_next = 2;
        s.retry_after_seconds = 1;
    });
    let started = std::time::Instant::now();
    k.ok(&["get", "configmaps"], None).await;
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(
        k.standin
            .requests()
            .iter()
            .filter(|r| r.status == 429)
            .count()
            == 2
    );
    // A 500 is the server's answer: kubectl reports it.
    k.standin.update_settings(|s| s.fail_next = 1);
    let error = k.fails(&["create", "configmap", "c"], None).await;
    assert!(
        error.contains("InternalError") || error.contains("etcdserver"),
        "{error}"
    );
    k.ok(&["create", "configmap", "c"], None).await;
}

#[tokio::test]
async fn client_certificate_and_exec_plugin_kubeconfigs_work_for_kubectl() {
    let k = Kubectl::start().await;
    let dir = tempfile::tempdir().unwrap();
    let with_cert = dir.path().join("cert-kubeconfig");
    std::fs::write(
        &with_cert,
        k.standin.client_certificate_kubeconfig("admin").unwrap(),
    )
    .unwrap();
    let with_exec = dir.path().join("exec-kubeconfig");
    std::fs::write(&with_exec, k.standin.exec_kubeconfig(dir.path()).unwrap()).unwrap();
    for config in [&with_cert, &with_exec] {
        let out = tokio::process::Command::new(kubectl_program())
            .arg("--kubeconfig")
            .arg(config)
            .args(["get", "namespaces", "-o", "name"])
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            config.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("namespace/default"));
    }

    // A certificate from another cluster's CA fails the handshake.
    let other = KubeStandIn::start(KubeStandInConfig::default())
        .await
        .unwrap();
    let foreign = other.client_certificate_kubeconfig("admin").unwrap();
    let ours = k.standin.kubeconfig();
    let url = |c: &str| {
        c.lines()
            .find_map(|l| l.trim().strip_prefix("server: "))
            .unwrap()
            .to_owned()
    };
    let foreign_here = foreign
        .replace(&url(&foreign), &url(&ours))
        .replace(&ca_line(&foreign), &ca_line(&ours));
    let config = dir.path().join("foreign-kubeconfig");
    std::fs::write(&config, foreign_here).unwrap();
    let out = tokio::process::Command::new(kubectl_program())
        .arg("--kubeconfig")
        .arg(&config)
        .args(["get", "namespaces"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("certificate") || stderr.contains("tls") || stderr.contains("Unauthorized"),
        "{stderr}"
    );
    // And no credential at all is 401.
    let bare = dir.path().join("bare-kubeconfig");
    std::fs::write(
        &bare,
        ours.replace(
            &ours
                .lines()
                .find(|l| l.contains("token:"))
                .unwrap()
                .to_string(),
            "    username: nobody",
        ),
    )
    .unwrap();
    let out = tokio::process::Command::new(kubectl_program())
        .arg("--kubeconfig")
        .arg(&bare)
        .args(["get", "namespaces"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Unauthorized")
            || String::from_utf8_lossy(&out.stderr).contains("provide credentials"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ca_line(kubeconfig: &str) -> String {
    kubeconfig
        .lines()
        .find(|l| l.contains("certificate-authority-data"))
        .unwrap()
        .to_owned()
}
