//! `windlass worker --placement X` with a placement credential: a worker inside a customer's
//! network. It holds no database URL and no key-encryption key. Its codec holds only its
//! organisation's payload key line (fetched from the API), so it can open only its
//! organisation's payloads; its activities reach the store through the API's placement
//! routes ([`ApiBackplane`]), which answer only for runs of clusters placed at X.

use std::sync::Arc;

use anyhow::Context;
use uuid::Uuid;
use windlass_activities::ActivitySet;
use windlass_activities::azure_access::AzureConnector;
use windlass_activities::backplane::SharedBackplane;
use windlass_activities::backplane_http::ApiBackplane;
use windlass_activities::rate_limit::RateLimiter;
use windlass_activities::step_log::StepLogs;
use windlass_core::crypto::{DataKey, from_hex};
use windlass_workers::{Backing, WorkerConfig};
use windlass_workflows::engine::codec::{KeyLine, PayloadKeySource, PayloadKeys};
use windlass_workflows::task_queues;
use zeroize::Zeroizing;

type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

use super::WorkerArgs;

/// The organisation's payload key line, from the API (re-read when a version is missing,
/// so a rotation reaches a running worker). Any other line is refused.
struct ApiPayloadKeys {
    api: Arc<ApiBackplane>,
    organization_id: Uuid,
}

impl PayloadKeySource for ApiPayloadKeys {
    fn versions(
        &self,
        line: &KeyLine,
        _create: bool,
    ) -> BoxFuture<'static, Result<Vec<(u32, DataKey)>, String>> {
        let api = self.api.clone();
        let own = *line == KeyLine::Organization(self.organization_id);
        let label = line.label();
        Box::pin(async move {
            if !own {
                return Err(format!(
                    "a placed worker holds only its organisation's payload keys, not {label}"
                ));
            }
            decode(api.payload_keys().await.map_err(|e| e.to_string())?)
        })
    }
}

fn decode(
    response: windlass_core::placement_wire::PayloadKeysResponse,
) -> Result<Vec<(u32, DataKey)>, String> {
    let mut versions = response
        .versions
        .into_iter()
        .map(|v| {
            let bytes = Zeroizing::new(from_hex(&v.key).map_err(|e| e.to_string())?);
            Ok((
                v.version,
                DataKey::from_bytes(&bytes).map_err(|e| e.to_string())?,
            ))
        })
        .collect::<Result<Vec<_>, String>>()?;
    versions.sort_by_key(|v| std::cmp::Reverse(v.0));
    Ok(versions)
}

pub async fn prepare(
    args: &WorkerArgs,
    credential: &str,
    limiter: Option<RateLimiter>,
) -> anyhow::Result<(WorkerConfig, Vec<String>, Backing, ActivitySet)> {
    let placement = args
        .queues
        .placement
        .clone()
        .context("a placed worker needs --placement")?;
    let api_url = args
        .api_url
        .as_deref()
        .context("a placed worker needs --api-url")?;
    let api = Arc::new(ApiBackplane::new(
        api_url,
        Zeroizing::new(credential.to_owned()),
    )?);
    let keys = api
        .payload_keys()
        .await
        .context("fetching the organisation's payload keys from the API")?;
    let organization_id = keys.organization_id;
    let line = KeyLine::Organization(organization_id);
    let source = ApiPayloadKeys {
        api: api.clone(),
        organization_id,
    };
    let mut engine = args.temporal.config(None).await?;
    engine.payload_keys = Some(PayloadKeys::new(Arc::new(source), line));
    let config = args.worker_config(engine);
    let backplane: SharedBackplane = api;
    let mut template = args.azure.client_template()?;
    template.rate_limiter = limiter.clone();
    let identity = args.own_identity.identity()?.context(
        "a placed worker needs the customer's own Azure workload identity to reach its \
         clusters (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE)",
    )?;
    // A placed worker runs in the customer's network: its private chart repositories are
    // what it is there for.
    let mut cluster_args = args.clusters.clone();
    cluster_args.chart_hosts_allow_private = true;
    let clusters = cluster_args
        .activities(
            AzureConnector::own_identity(template, identity),
            StepLogs::with_backplane(backplane.clone()),
            limiter,
        )
        .await?;
    // The cluster clients (locating a cluster's storage, reading its kubeconfig) and the
    // deployment activities; no key rotation (it needs the key ring).
    let activities = ActivitySet {
        deployments: Some(clusters.deployments_with(backplane.clone())),
        clusters: Some(clusters),
        ..ActivitySet::default()
    };
    // The environment queue only: cluster runs (terraform, charts) of a placed cluster run
    // on the shared infrastructure queue, which has the store.
    let queues = vec![task_queues::placed(
        task_queues::ENVIRONMENT,
        Some(&placement),
    )];
    tracing::info!(%placement, %organization_id, "placed worker: no store, reporting to the API");
    Ok((config, queues, Backing::Placed(backplane), activities))
}
