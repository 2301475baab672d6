//! Projects, their environments, and the services an environment runs: container apps,
//! jobs, cron jobs and helm charts the user supplies. A service names the secrets it needs;
//! the values stay sealed in the store until a deployment's activity puts them into the
//! cluster as a Kubernetes Secret.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::audit::Environment as EnvironmentType;
pub use crate::chart_references::ChartSource;
use crate::secrets::SecretScope;
use crate::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Project {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// What a new deployment does when one is already waiting for the environment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeployPolicy {
    /// Waits its turn: every requested revision is deployed, in order.
    #[default]
    Queue,
    /// Replaces the deployment waiting (not the one running): only the newest request
    /// runs next. What CI pipelines pushing every commit want.
    Supersede,
}

impl DeployPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queue => "queue",
            Self::Supersede => "supersede",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Queue, Self::Supersede]
            .into_iter()
            .find(|p| p.as_str() == text)
    }
}

/// An environment: one namespace of one cluster, holding services.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EnvironmentSpec {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub project_id: Uuid,
    pub cluster_id: Uuid,
    pub name: String,
    #[serde(rename = "type")]
    pub environment_type: EnvironmentType,
    /// The Kubernetes namespace the services run in.
    pub namespace: String,
    pub deploy_policy: DeployPolicy,
    /// Services deployed at once; the rest wait for a free slot.
    pub max_parallel: u32,
    pub services: Vec<ServiceSpec>,
    pub created_at: DateTime<Utc>,
}

pub const DEFAULT_MAX_PARALLEL: u32 = 10;
pub const MAX_SERVICES: usize = 200;

/// Namespaces an environment may never take: Kubernetes' own, the default one, and every
/// namespace the cluster charts live in (Windlass's agent among them). An environment
/// there could replace or read what keeps the cluster running.
pub fn reserved_namespace(namespace: &str) -> bool {
    namespace.starts_with("kube-")
        || namespace == "default"
        || namespace == "windlass"
        || namespace.starts_with("windlass-system")
        || crate::cluster_charts::ChartGraph::standard()
            .charts()
            .iter()
            .any(|chart| chart.namespace == namespace)
}

impl EnvironmentSpec {
    /// Whether a service of this environment may name a secret of `scope`.
    pub fn may_use_secret_of(&self, scope: &SecretScope) -> bool {
        match scope {
            SecretScope::Organization => true,
            SecretScope::Project { id } => self.project_id == *id,
            SecretScope::EnvironmentType {
                project_id,
                environment,
            } => self.project_id == *project_id && self.environment_type == *environment,
            SecretScope::Environment { id } => self.id == *id,
        }
    }

    pub fn validate(&self) -> Result<()> {
        validate_label("environment name", &self.name)?;
        validate_label("namespace", &self.namespace)?;
        if reserved_namespace(&self.namespace) {
            return Err(Error::InvalidInput(format!(
                "namespace {:?} is reserved for Kubernetes and the cluster's own charts",
                self.namespace
            )));
        }
        if !(1..=100).contains(&self.max_parallel) {
            return Err(Error::InvalidInput(
                "max_parallel must be between 1 and 100".into(),
            ));
        }
        validate_services(&self.services)
    }
}

pub fn validate_services(services: &[ServiceSpec]) -> Result<()> {
    if services.len() > MAX_SERVICES {
        return Err(Error::InvalidInput(format!(
            "an environment holds at most {MAX_SERVICES} services"
        )));
    }
    let mut names = std::collections::BTreeSet::new();
    let cluster_charts = crate::cluster_charts::ChartGraph::standard();
    for service in services {
        service.validate()?;
        if cluster_charts.get(service.name()).is_some() {
            return Err(Error::InvalidInput(format!(
                "service name {} is the release name of one of the cluster's own charts",
                service.name()
            )));
        }
        if !names.insert(service.name()) {
            return Err(Error::InvalidInput(format!(
                "two services are named {}",
                service.name()
            )));
        }
    }
    Ok(())
}

/// One service of an environment. Its name is its helm release's name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ServiceSpec {
    /// A long-running container behind a Service, rolled out as a Deployment.
    ContainerApp(ContainerApp),
    /// A container run to completion once per deployment (migrations, seeds).
    Job(JobSpec),
    /// A container run on a cron schedule.
    CronJob(CronJobSpec),
    /// A chart the user supplies, from a chart repository or an OCI registry.
    HelmChart(HelmChartService),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContainerApp {
    pub name: String,
    pub image: String,
    pub port: u16,
    #[serde(default = "one")]
    pub replicas: u32,
    /// Plain settings (no secrets: these are stored and shown as they are).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Environment variable name → name of an organisation secret.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    #[serde(default)]
    pub resources: Resources,
    #[serde(default)]
    pub probes: Probes,
    /// How long the rollout may take before it counts as failed
    /// (`progressDeadlineSeconds`).
    #[serde(default = "default_rollout_seconds")]
    pub rollout_timeout_seconds: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    pub name: String,
    pub image: String,
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    #[serde(default)]
    pub resources: Resources,
    #[serde(default = "default_rollout_seconds")]
    pub timeout_seconds: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CronJobSpec {
    pub name: String,
    /// Five-field cron expression, UTC.
    pub schedule: String,
    pub image: String,
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    #[serde(default)]
    pub resources: Resources,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HelmChartService {
    pub name: String,
    pub chart: ChartSource,
    /// Values for the chart (no secrets: they are stored and shown as they are).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub values: serde_json::Value,
    #[serde(default = "default_rollout_seconds")]
    pub timeout_seconds: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// Kubernetes quantities, requests = limits for memory.
    pub cpu: String,
    pub memory: String,
}

impl Default for Resources {
    fn default() -> Self {
        Self {
            cpu: "100m".into(),
            memory: "128Mi".into(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Probes {
    /// HTTP path that answers 2xx once the app can take traffic.
    pub readiness_path: Option<String>,
    /// HTTP path that answers 2xx while the app is alive.
    pub liveness_path: Option<String>,
}

fn one() -> u32 {
    1
}

fn default_rollout_seconds() -> u32 {
    600
}

impl ServiceSpec {
    pub fn name(&self) -> &str {
        match self {
            Self::ContainerApp(s) => &s.name,
            Self::Job(s) => &s.name,
            Self::CronJob(s) => &s.name,
            Self::HelmChart(s) => &s.name,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Self::ContainerApp(_) => "container_app",
            Self::Job(_) => "job",
            Self::CronJob(_) => "cron_job",
            Self::HelmChart(_) => "helm_chart",
        }
    }

    /// Environment variable → secret name: what the deployment must be granted.
    pub fn secrets(&self) -> BTreeMap<String, String> {
        match self {
            Self::ContainerApp(s) => s.secrets.clone(),
            Self::Job(s) => s.secrets.clone(),
            Self::CronJob(s) => s.secrets.clone(),
            Self::HelmChart(_) => BTreeMap::new(),
        }
    }

    /// The image, for services that run one container.
    pub fn image_mut(&mut self) -> Option<&mut String> {
        match self {
            Self::ContainerApp(s) => Some(&mut s.image),
            Self::Job(s) => Some(&mut s.image),
            Self::CronJob(s) => Some(&mut s.image),
            Self::HelmChart(_) => None,
        }
    }

    /// How long the service may take to become ready.
    pub fn timeout_seconds(&self) -> u32 {
        match self {
            Self::ContainerApp(s) => s.rollout_timeout_seconds,
            Self::Job(s) => s.timeout_seconds,
            Self::CronJob(_) => 60,
            Self::HelmChart(s) => s.timeout_seconds,
        }
    }

    pub fn validate(&self) -> Result<()> {
        validate_label("service name", self.name())?;
        let name = self.name();
        self.validate_kubernetes_names()?;
        let image = |image: &str| {
            if image.is_empty() || image.len() > 512 || image.chars().any(char::is_whitespace) {
                Err(Error::InvalidInput(format!(
                    "service {name}: image must be a non-empty reference without spaces"
                )))
            } else {
                Ok(())
            }
        };
        let env = |env: &BTreeMap<String, String>, secrets: &BTreeMap<String, String>| {
            for key in env.keys().chain(secrets.keys()) {
                validate_env_name(name, key)?;
            }
            if let Some(key) = env.keys().find(|k| secrets.contains_key(*k)) {
                return Err(Error::InvalidInput(format!(
                    "service {name}: {key} is both a setting and a secret"
                )));
            }
            for secret in secrets.values() {
                crate::secrets::validate_name(secret)?;
            }
            Ok(())
        };
        let timeout = |seconds: u32| {
            if (10..=3600).contains(&seconds) {
                Ok(())
            } else {
                Err(Error::InvalidInput(format!(
                    "service {name}: timeouts are between 10 and 3600 seconds"
                )))
            }
        };
        match self {
            Self::ContainerApp(s) => {
                image(&s.image)?;
                env(&s.env, &s.secrets)?;
                s.resources.validate(name)?;
                timeout(s.rollout_timeout_seconds)?;
                if s.port == 0 {
                    return Err(Error::InvalidInput(format!(
                        "service {name}: port must be between 1 and 65535"
                    )));
                }
                if !(1..=100).contains(&s.replicas) {
                    return Err(Error::InvalidInput(format!(
                        "service {name}: replicas must be between 1 and 100"
                    )));
                }
                for path in [&s.probes.readiness_path, &s.probes.liveness_path]
                    .into_iter()
                    .flatten()
                {
                    if !path.starts_with('/') {
                        return Err(Error::InvalidInput(format!(
                            "service {name}: probe paths start with /"
                        )));
                    }
                }
                Ok(())
            }
            Self::Job(s) => {
                image(&s.image)?;
                env(&s.env, &s.secrets)?;
                s.resources.validate(name)?;
                timeout(s.timeout_seconds)
            }
            Self::CronJob(s) => {
                image(&s.image)?;
                env(&s.env, &s.secrets)?;
                s.resources.validate(name)?;
                let fields = s.schedule.split_whitespace().count();
                if fields != 5 {
                    return Err(Error::InvalidInput(format!(
                        "service {name}: schedule must be a five-field cron expression"
                    )));
                }
                Ok(())
            }
            Self::HelmChart(s) => {
                timeout(s.timeout_seconds)?;
                if !(s.values.is_object() || s.values.is_null()) {
                    return Err(Error::InvalidInput(format!(
                        "service {name}: values must be an object"
                    )));
                }
                crate::chart_references::validate(name, &s.chart)?;
                Ok(())
            }
        }
    }
}

impl ServiceSpec {
    /// The rules of the Kubernetes objects the service becomes, beyond `validate_label`
    /// (which already keeps a helm release name to 53 characters): a refused name would
    /// only fail mid-deployment, with the environment half rolled out.
    fn validate_kubernetes_names(&self) -> Result<()> {
        let name = self.name();
        match self {
            // Its Kubernetes Service must be a DNS-1035 label.
            Self::ContainerApp(_) if !name.starts_with(|c: char| c.is_ascii_lowercase()) => {
                Err(Error::InvalidInput(format!(
                    "service name {name:?} must start with a lowercase letter: a container app \
                     is a Kubernetes Service, whose name is a DNS-1035 label"
                )))
            }
            // The CronJob controller names each Job <name>-<11-digit time>, at most 63.
            Self::CronJob(_) if name.len() > MAX_CRON_JOB_NAME => {
                Err(Error::InvalidInput(format!(
                    "service name {name:?} is {} characters; a cron job's name is at most \
                 {MAX_CRON_JOB_NAME} (Kubernetes adds an 11-character suffix to name its Jobs)",
                    name.len()
                )))
            }
            // Each deployment runs the Job <name>-r<revision>, at most 63 characters.
            Self::Job(_) if name.len() > MAX_JOB_NAME => Err(Error::InvalidInput(format!(
                "service name {name:?} is {} characters; a job's name is at most {MAX_JOB_NAME} \
                 (each deployment runs it as the Kubernetes Job {name}-r<revision>, at most 63)",
                name.len()
            ))),
            _ => Ok(()),
        }
    }
}

/// The longest name a cron job service may have (Kubernetes's CronJob limit).
pub const MAX_CRON_JOB_NAME: usize = 52;
/// The longest name a job service may have: 63 less `-r` and a ten-digit revision.
pub const MAX_JOB_NAME: usize = 51;

impl Resources {
    fn validate(&self, service: &str) -> Result<()> {
        let quantity = |q: &str| {
            !q.is_empty()
                && q.len() <= 16
                && q.starts_with(|c: char| c.is_ascii_digit())
                && q.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.')
        };
        if quantity(&self.cpu) && quantity(&self.memory) {
            Ok(())
        } else {
            Err(Error::InvalidInput(format!(
                "service {service}: cpu and memory are Kubernetes quantities such as 250m and 256Mi"
            )))
        }
    }
}

/// A DNS-1123 label: what Kubernetes accepts as a namespace or release name.
pub fn validate_label(what: &str, name: &str) -> Result<()> {
    let ok = (1..=53).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!(
            "{what} {name:?} must be 1 to 53 lowercase letters, digits and dashes"
        )))
    }
}

fn validate_env_name(service: &str, key: &str) -> Result<()> {
    let ok = !key.is_empty()
        && !key.starts_with(|c: char| c.is_ascii_digit())
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!(
            "service {service}: {key:?} is not an environment variable name"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(name: &str) -> ServiceSpec {
        serde_json::from_value(serde_json::json!({
            "kind": "container_app", "name": name, "image": "nginx:1.27", "port": 8080,
            "env": {"MODE": "prod"}, "secrets": {"DATABASE_URL": "db/url"}
        }))
        .unwrap()
    }

    #[test]
    fn a_container_app_takes_defaults_for_what_it_does_not_say() {
        let ServiceSpec::ContainerApp(app) = app("web") else {
            panic!()
        };
        assert_eq!(app.replicas, 1);
        assert_eq!(app.resources.cpu, "100m");
        assert_eq!(app.rollout_timeout_seconds, 600);
    }

    #[test]
    fn services_in_one_environment_have_distinct_valid_names() {
        assert!(validate_services(&[app("web"), app("api")]).is_ok());
        let twice = validate_services(&[app("web"), app("web")]).unwrap_err();
        assert!(twice.to_string().contains("two services are named web"));
        assert!(app("Web_1").validate().is_err());
    }

    #[test]
    fn names_follow_the_rules_of_the_kubernetes_objects_they_become() {
        // A Service name is a DNS-1035 label: `2fa` is refused by a real API server.
        let error = app("2fa").validate().unwrap_err().to_string();
        assert!(
            error.contains("must start with a lowercase letter"),
            "{error}"
        );
        let cron = |name: &str| -> ServiceSpec {
            serde_json::from_value(serde_json::json!({
                "kind": "cron_job", "name": name, "image": "tools:1", "schedule": "0 3 * * *"
            }))
            .unwrap()
        };
        let job = |name: &str| -> ServiceSpec {
            serde_json::from_value(serde_json::json!({
                "kind": "job", "name": name, "image": "tools:1"
            }))
            .unwrap()
        };
        // A job or cron job may start with a digit (a DNS-1123 subdomain).
        assert!(cron("2fa-cleanup").validate().is_ok());
        assert!(cron(&"c".repeat(52)).validate().is_ok());
        let error = cron(&"c".repeat(53)).validate().unwrap_err().to_string();
        assert!(
            error.contains("is 53 characters; a cron job's name is at most 52"),
            "{error}"
        );
        assert!(job(&"j".repeat(51)).validate().is_ok());
        let error = job(&"j".repeat(52)).validate().unwrap_err().to_string();
        assert!(error.contains("a job's name is at most 51"), "{error}");
    }

    #[test]
    fn a_variable_is_a_setting_or_a_secret_not_both() {
        let mut service = app("web");
        if let ServiceSpec::ContainerApp(a) = &mut service {
            a.env.insert("DATABASE_URL".into(), "x".into());
        }
        let error = service.validate().unwrap_err().to_string();
        assert!(error.contains("both a setting and a secret"), "{error}");
    }

    #[test]
    fn user_charts_are_pinned_and_come_from_a_repository_or_registry() {
        let chart = |chart: serde_json::Value| -> ServiceSpec {
            serde_json::from_value(
                serde_json::json!({"kind": "helm_chart", "name": "cache", "chart": chart}),
            )
            .unwrap()
        };
        assert!(
            chart(
                serde_json::json!({"from": "oci", "reference": "oci://r/redis", "version": "1.0.0"})
            )
            .validate()
            .is_ok()
        );
        assert!(
            chart(serde_json::json!({"from": "oci", "reference": "r/redis", "version": "1"}))
                .validate()
                .is_err()
        );
        assert!(
            chart(serde_json::json!({"from": "repository", "url": "https://charts.example", "name": "redis", "version": ""}))
                .validate()
                .is_err()
        );
    }

    #[test]
    fn unknown_fields_are_refused_not_ignored() {
        let error = serde_json::from_value::<ServiceSpec>(serde_json::json!({
            "kind": "container_app", "name": "web", "image": "nginx", "port": 80, "replica": 3
        }))
        .unwrap_err();
        assert!(error.to_string().contains("replica"), "{error}");
    }
}
