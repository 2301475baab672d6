//! The Kubernetes objects a container app, job or cron job becomes. They are installed as
//! one helm release per service (Windlass's generic `windlass-app` chart renders the
//! objects it is given), so every service has a release history to roll back along.
//!
//! Secret values are not here: a service with secrets reads them from the Secret
//! `<service>-secrets`, which the deployment writes into the namespace itself, so they
//! never enter helm's release records.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::environments::{ContainerApp, CronJobSpec, JobSpec, Resources, ServiceSpec};

/// Labels every object of a service carries; the rollout watch selects on them.
pub fn service_labels(environment: &str, service: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".into(), service.into()),
        ("app.kubernetes.io/instance".into(), service.into()),
        ("app.kubernetes.io/part-of".into(), environment.into()),
        ("app.kubernetes.io/managed-by".into(), "windlass".into()),
    ])
}

pub fn secret_name(service: &str) -> String {
    format!("{service}-secrets")
}

/// What the watch waits for once the release is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Workload {
    Deployment(String),
    Job(String),
    /// Nothing runs until the schedule fires: applied is done.
    Scheduled,
    /// A user chart: every Deployment and StatefulSet labelled with the release.
    Release(String),
}

/// The objects of a service (none for a user chart, which brings its own), and what to
/// wait for. `revision` names per-deployment objects (a Job's pod template is immutable,
/// so each deployment runs its own Job).
pub fn render(environment: &str, service: &ServiceSpec, revision: u32) -> (Vec<Value>, Workload) {
    match service {
        ServiceSpec::ContainerApp(app) => (
            container_app(environment, app),
            Workload::Deployment(app.name.clone()),
        ),
        ServiceSpec::Job(job) => {
            let name = format!("{}-r{revision}", job.name);
            (
                vec![job_object(environment, job, &name)],
                Workload::Job(name),
            )
        }
        ServiceSpec::CronJob(cron) => (vec![cron_job(environment, cron)], Workload::Scheduled),
        ServiceSpec::HelmChart(chart) => (Vec::new(), Workload::Release(chart.name.clone())),
    }
}

/// Pod template annotation naming the version of the service's secrets.
pub const SECRETS_DIGEST_ANNOTATION: &str = "windlass.dev/secrets-digest";

/// Stamps the pods of a service with the digest of its secrets' sealed versions, so a
/// rotated secret rolls the pods (they read it at start, through `envFrom`) while an
/// unchanged one leaves them be. The digest is of ciphertexts: it tells nothing of values.
pub fn mark_secrets(objects: &mut [Value], digest: &str) {
    for object in objects {
        let template = match object["kind"].as_str() {
            Some("Deployment") | Some("Job") => &mut object["spec"]["template"],
            Some("CronJob") => &mut object["spec"]["jobTemplate"]["spec"]["template"],
            _ => continue,
        };
        template["metadata"]["annotations"][SECRETS_DIGEST_ANNOTATION] = json!(digest);
    }
}

fn container_app(environment: &str, app: &ContainerApp) -> Vec<Value> {
    let labels = service_labels(environment, &app.name);
    let selector =
        json!({"app.kubernetes.io/name": app.name, "app.kubernetes.io/instance": app.name});
    let mut container = container(
        &app.name,
        &app.image,
        &[],
        &app.env,
        &app.secrets,
        &app.resources,
    );
    container["ports"] = json!([{"name": "http", "containerPort": app.port, "protocol": "TCP"}]);
    let probe =
        |path: &str| json!({"httpGet": {"path": path, "port": "http"}, "periodSeconds": 10});
    if let Some(path) = &app.probes.readiness_path {
        container["readinessProbe"] = probe(path);
    }
    if let Some(path) = &app.probes.liveness_path {
        container["livenessProbe"] = probe(path);
    }
    vec![
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": app.name, "labels": labels},
            "spec": {
                "replicas": app.replicas,
                "progressDeadlineSeconds": app.rollout_timeout_seconds,
                "revisionHistoryLimit": 5,
                "selector": {"matchLabels": selector},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [container]}
                }
            }
        }),
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": app.name, "labels": labels},
            "spec": {
                "selector": selector,
                "ports": [{"name": "http", "port": app.port, "targetPort": "http", "protocol": "TCP"}]
            }
        }),
    ]
}

fn job_object(environment: &str, job: &JobSpec, name: &str) -> Value {
    let labels = service_labels(environment, &job.name);
    let container = container(
        &job.name,
        &job.image,
        &job.command,
        &job.env,
        &job.secrets,
        &job.resources,
    );
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "backoffLimit": 2,
            "activeDeadlineSeconds": job.timeout_seconds,
            "ttlSecondsAfterFinished": 86400,
            "template": {
                "metadata": {"labels": labels},
                "spec": {"restartPolicy": "Never", "containers": [container]}
            }
        }
    })
}

fn cron_job(environment: &str, cron: &CronJobSpec) -> Value {
    let labels = service_labels(environment, &cron.name);
    let container = container(
        &cron.name,
        &cron.image,
        &cron.command,
        &cron.env,
        &cron.secrets,
        &cron.resources,
    );
    json!({
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": cron.name, "labels": labels},
        "spec": {
            "schedule": cron.schedule,
            "timeZone": "Etc/UTC",
            "concurrencyPolicy": "Forbid",
            "jobTemplate": {"spec": {"backoffLimit": 2, "template": {
                "metadata": {"labels": labels},
                "spec": {"restartPolicy": "Never", "containers": [container]}
            }}}
        }
    })
}

fn container(
    name: &str,
    image: &str,
    command: &[String],
    env: &BTreeMap<String, String>,
    secrets: &BTreeMap<String, String>,
    resources: &Resources,
) -> Value {
    let mut container = json!({
        "name": name,
        "image": image,
        "env": env.iter().map(|(k, v)| json!({"name": k, "value": v})).collect::<Vec<_>>(),
        "resources": {
            "requests": {"cpu": resources.cpu, "memory": resources.memory},
            "limits": {"memory": resources.memory}
        },
        "securityContext": {"allowPrivilegeEscalation": false, "runAsNonRoot": true}
    });
    if !command.is_empty() {
        container["command"] = json!(command);
    }
    if !secrets.is_empty() {
        // Keys of the Secret are the variable names: envFrom maps them one to one.
        container["envFrom"] = json!([{"secretRef": {"name": secret_name(name)}}]);
    }
    container
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(value: Value) -> ServiceSpec {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn a_container_app_is_a_deployment_behind_a_service_reading_its_secret() {
        let app = service(json!({
            "kind": "container_app", "name": "web", "image": "nginx:1.27", "port": 8080,
            "replicas": 3, "env": {"MODE": "prod"}, "secrets": {"DATABASE_URL": "db/url"},
            "probes": {"readiness_path": "/ready"}, "rollout_timeout_seconds": 120
        }));
        let (objects, workload) = render("shop-prod", &app, 4);
        assert_eq!(workload, Workload::Deployment("web".into()));
        let deployment = &objects[0];
        assert_eq!(deployment["kind"], "Deployment");
        assert_eq!(deployment["spec"]["replicas"], 3);
        assert_eq!(deployment["spec"]["progressDeadlineSeconds"], 120);
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["image"], "nginx:1.27");
        assert_eq!(
            container["env"][0],
            json!({"name": "MODE", "value": "prod"})
        );
        assert_eq!(container["envFrom"][0]["secretRef"]["name"], "web-secrets");
        assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/ready");
        assert!(
            !deployment.to_string().contains("db/url"),
            "secret names stay out of the manifest"
        );
        assert_eq!(objects[1]["kind"], "Service");
        assert_eq!(objects[1]["spec"]["ports"][0]["port"], 8080);
    }

    #[test]
    fn pods_carry_the_digest_of_their_secrets() {
        let app =
            service(json!({"kind": "container_app", "name": "api", "image": "a:1", "port": 80}));
        let (mut objects, _) = render("shop-prod", &app, 1);
        mark_secrets(&mut objects, "0123abcd");
        assert_eq!(
            objects[0]["spec"]["template"]["metadata"]["annotations"][SECRETS_DIGEST_ANNOTATION],
            "0123abcd"
        );
        assert!(
            objects[1]["spec"]["template"].is_null(),
            "the Service has no pods"
        );
        let cron = service(
            json!({"kind": "cron_job", "name": "r", "image": "a:1", "schedule": "0 3 * * *"}),
        );
        let (mut objects, _) = render("shop-prod", &cron, 1);
        mark_secrets(&mut objects, "ff");
        assert_eq!(
            objects[0]["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["annotations"]
                [SECRETS_DIGEST_ANNOTATION],
            "ff"
        );
    }

    #[test]
    fn each_deployment_runs_its_own_job() {
        let job = service(
            json!({"kind": "job", "name": "migrate", "image": "app:2", "command": ["./migrate"]}),
        );
        let (objects, workload) = render("shop-prod", &job, 7);
        assert_eq!(workload, Workload::Job("migrate-r7".into()));
        assert_eq!(objects[0]["metadata"]["name"], "migrate-r7");
        assert_eq!(
            objects[0]["spec"]["template"]["spec"]["restartPolicy"],
            "Never"
        );
    }

    #[test]
    fn a_cron_job_runs_in_utc_without_overlap() {
        let cron = service(
            json!({"kind": "cron_job", "name": "report", "image": "app:2", "schedule": "0 3 * * *"}),
        );
        let (objects, workload) = render("shop-prod", &cron, 1);
        assert_eq!(workload, Workload::Scheduled);
        assert_eq!(objects[0]["spec"]["timeZone"], "Etc/UTC");
        assert_eq!(objects[0]["spec"]["concurrencyPolicy"], "Forbid");
    }
}
