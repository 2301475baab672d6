//! Environments deployed to a provisioned cluster (Kubernetes stand-in, real helm): twenty-one
//! services in parallel, a failing service rolling the whole environment back, two
//! requests that queue instead of overlapping, a cancel in the middle of a rollout, and a
//! CI pipeline's signed webhook.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;
use windlass_api::{ClusterStarted, DeploymentStarted, RunDetail};
use windlass_core::deployments::DeploymentTrigger;
use windlass_core::runs::{RunStatus, StepStatus};
use windlass_standins::kube::ImageDelay;
use windlass_test_support::client::answer;

use crate::support::{Stack, id_of, step};

const DB_PASSWORD: &str = "s3cr3t-passw0rd-for-the-shop";

/// Provisions a cluster through the API and returns its id.
pub(crate) async fn provisioned_cluster(stack: &Stack, org: Uuid, account: Uuid) -> String {
    let (status, _, started) = stack
        .api
        .post(
            &format!("/v1/organizations/{org}/clusters"),
            json!({"name": "apps", "cloud_account_id": account, "region": "westeurope",
                   "kubernetes_version": "1.33"}),
            &[("idempotency-key", "create-apps")],
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let started: ClusterStarted = answer((status, started)).unwrap();
    let run = stack
        .wait_for_run(org, started.run.id, Duration::from_secs(300), |r| {
            r.finished_at.is_some()
        })
        .await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    started.cluster.id.to_string()
}

/// Eighteen web apps, an API reading the database password, a migration job and a
/// nightly report: twenty-one services.
pub(crate) fn shop_services() -> Vec<Value> {
    let mut services: Vec<Value> = (1..=18)
        .map(|i| {
            json!({"kind": "container_app", "name": format!("web-{i}"), "image": "shop/web:1",
                   "port": 8080, "env": {"SHARD": i.to_string()}, "rollout_timeout_seconds": 10})
        })
        .collect();
    services.push(
        json!({"kind": "container_app", "name": "api", "image": "shop/api:1",
        "port": 9000, "replicas": 2, "secrets": {"DATABASE_PASSWORD": "shop/db-password"},
        "probes": {"readiness_path": "/ready"}, "rollout_timeout_seconds": 10}),
    );
    services.push(
        json!({"kind": "job", "name": "migrate", "image": "shop/api:1",
        "command": ["./migrate"], "secrets": {"DATABASE_PASSWORD": "shop/db-password"},
        "timeout_seconds": 30}),
    );
    services.push(
        json!({"kind": "cron_job", "name": "report", "image": "shop/report:1",
        "schedule": "0 3 * * *"}),
    );
    services
}

/// An organisation with a provisioned cluster, the shop's secret, a project and a
/// production environment of the shop's services. Returns (org, environment, webhook
/// secret).
pub(crate) async fn shop_environment(stack: &Stack, max_parallel: u32) -> (Uuid, String, String) {
    let (org, account) = stack.organization_with_verified_azure_account().await;
    let cluster = provisioned_cluster(stack, org, account).await;
    let project = shop_project(stack, org, DB_PASSWORD).await;
    let (status, _, created) = stack
        .api
        .post(
            &format!("/v1/organizations/{org}/projects/{project}/environments"),
            json!({"name": "prod", "type": "production", "cluster_id": cluster,
                   "max_parallel": max_parallel, "services": shop_services()}),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["environment"]["namespace"], "shop-prod");
    (
        org,
        created["environment"]["id"].as_str().unwrap().to_owned(),
        created["webhook_secret"].as_str().unwrap().to_owned(),
    )
}

/// Lets `org` fetch charts over plain HTTP (`PUT .../chart-policy`), as `windlass dev`
/// does for its demo organisation; returns the organisation as the API answers.
pub(crate) async fn allow_plain_http_charts(stack: &Stack, org: Uuid) -> Value {
    let (status, _, organization) = stack
        .api
        .raw(
            reqwest::Method::PUT,
            &format!("/v1/organizations/{org}/chart-policy"),
            Some("application/json"),
            json!({"allow_plain_http": true}).to_string().into_bytes(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{organization:#}");
    organization
}

/// The shop's database password as a secret of `org`, and the project `shop`; returns
/// the project's id.
pub(crate) async fn shop_project(stack: &Stack, org: Uuid, db_password: &str) -> String {
    let (status, _, _) = stack
        .api
        .post(
            &format!("/v1/organizations/{org}/secrets"),
            json!({"name": "shop/db-password", "value": db_password}),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, project) = stack
        .api
        .post(
            &format!("/v1/organizations/{org}/projects"),
            json!({"name": "shop"}),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{project}");
    project["id"].as_str().unwrap().to_owned()
}

pub(crate) async fn deploy(stack: &Stack, org: Uuid, env: &str, body: Value) -> DeploymentStarted {
    let (status, _, started) = stack
        .api
        .post(
            &format!("/v1/organizations/{org}/environments/{env}/deployments"),
            body,
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    answer((status, started)).unwrap()
}

pub(crate) async fn finished(stack: &Stack, org: Uuid, started: &DeploymentStarted) -> RunDetail {
    stack
        .wait_for_run(org, started.run.id, Duration::from_secs(240), |r| {
            r.finished_at.is_some()
        })
        .await
}

/// A deployment allowed 20 services at once on workers with 2 activity slots runs 2 at a
/// time; it says so: the run names the workers' capacity as what held it back, and each
/// service step that waited carries how long.
#[tokio::test]
async fn a_deployment_capped_by_the_workers_slots_says_so() {
    let mut stack = Stack::with_clusters_without_worker().await;
    stack.activity_slots = 2;
    stack.start_in_process_worker().await;
    let kube = &stack.clusters.as_ref().unwrap().kube;
    let (org, env, _) = shop_environment(&stack, 20).await;
    // Each rollout takes a second, so the services queue behind the two slots.
    kube.set_rollout_delay(Duration::from_secs(1));
    let started = deploy(&stack, org, &env, json!({})).await;
    let run = finished(&stack, org, &started).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    let capacity = run
        .worker_capacity
        .as_ref()
        .expect("the workers' capacity is named");
    assert!(capacity.waiting_steps >= 2, "{capacity:#?}");
    assert!(capacity.longest_wait_ms >= 2_000, "{capacity:#?}");
    assert!(
        capacity.note.contains("--max-concurrent-activities"),
        "{capacity:#?}"
    );
    let waited = run
        .steps
        .iter()
        .filter(|s| s.key.starts_with("deploy/"))
        .filter(|s| s.longest_wait_ms.unwrap_or(0) >= 2_000)
        .count();
    assert!(waited >= 2, "{run:#?}");
}

/// `windlass deploy --follow` as a person at a terminal runs it.
fn deploy_command(stack: &Stack, org: Uuid, env: &str, image: &str) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_windlass"));
    command
        .args(["deploy", "--follow", "--environment", env, "--image", image])
        .env("WINDLASS_API_URL", &stack.api.base)
        .env("WINDLASS_TOKEN", stack.api.token.as_deref().unwrap())
        .env("WINDLASS_ORGANIZATION", org.to_string())
        .env("WINDLASS_LOG", "warn");
    command
}

async fn deployments(stack: &Stack, org: Uuid, env: &str) -> Vec<Value> {
    let (status, list) = stack
        .api
        .get(&format!(
            "/v1/organizations/{org}/environments/{env}/deployments"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list.as_array().unwrap().clone()
}

/// Service name -> image of every Deployment in the namespace, as the cluster has them.
fn deployed_images(stack: &Stack) -> BTreeMap<String, String> {
    let kube = &stack.clusters.as_ref().unwrap().kube;
    kube.list("Deployment", Some("shop-prod"))
        .into_iter()
        .map(|d| {
            (
                d["metadata"]["name"].as_str().unwrap().to_owned(),
                d["spec"]["template"]["spec"]["containers"][0]["image"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            )
        })
        .collect()
}

fn all_ready(stack: &Stack) -> bool {
    let kube = &stack.clusters.as_ref().unwrap().kube;
    kube.list("Deployment", Some("shop-prod")).iter().all(|d| {
        d["status"]["observedGeneration"] == d["metadata"]["generation"]
            && d["status"]["availableReplicas"] == d["spec"]["replicas"]
    })
}

#[tokio::test]
async fn twenty_one_services_deploy_and_a_failing_one_rolls_the_whole_environment_back() {
    let stack = Stack::with_clusters().await;
    let (org, env, _) = shop_environment(&stack, 5).await;
    let kube = &stack.clusters.as_ref().unwrap().kube;

    // Revision 1: everything rolls out.
    let first = deploy(&stack, org, &env, json!({})).await;
    assert_eq!(first.deployment.revision, 1);
    let run = finished(&stack, org, &first).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    for service in ["web-1", "web-18", "api", "migrate", "report"] {
        assert_eq!(
            step(&run, &format!("deploy/{service}")).status,
            StepStatus::Succeeded,
            "{service}"
        );
    }
    let images = deployed_images(&stack);
    assert_eq!(images.len(), 19, "{images:?}");
    assert!(images.values().all(|i| i.ends_with(":1")), "{images:?}");
    assert!(all_ready(&stack));
    assert!(kube.get("Job", "shop-prod", "migrate-r1").is_some());
    assert!(kube.get("CronJob", "shop-prod", "report").is_some());
    assert!(kube.get("Service", "shop-prod", "api").is_some());
    // The API's secret went from the store into the namespace, and nowhere else.
    let secret = kube
        .get("Secret", "shop-prod", "api-secrets")
        .expect("api-secrets");
    let encoded = secret["data"]["DATABASE_PASSWORD"].as_str().unwrap();
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap();
    assert_eq!(decoded, DB_PASSWORD.as_bytes());
    let api = kube.get("Deployment", "shop-prod", "api").unwrap();
    assert!(!api.to_string().contains(DB_PASSWORD));
    for release in kube.helm_releases("shop-prod") {
        assert_eq!(release.status, "deployed", "{release:?}");
    }
    // The rollout was watched: its events are in the step's log.
    let run_id = first.run.id;
    let (status, log) = stack
        .api
        .get(&format!(
            "/v1/organizations/{org}/runs/{run_id}/log?step=deploy/api"
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    let log = log.to_string();
    assert!(log.contains("deployment/api: 2/2 available"), "{log}");
    assert!(!log.contains(DB_PASSWORD));
    // The deploy is on the record from the environment's and the cluster's standpoint.
    let (_, environment) = stack
        .api
        .get(&format!("/v1/organizations/{org}/environments/{env}"))
        .await;
    let cluster = environment["cluster_id"].as_str().unwrap();
    for filter in [
        "environment=production".to_owned(),
        format!("cluster_id={cluster}"),
        format!("project_id={}", environment["project_id"].as_str().unwrap()),
    ] {
        let (_, trail) = stack
            .api
            .get(&format!(
                "/v1/organizations/{org}/audit?action=environments.deploy&{filter}"
            ))
            .await;
        assert_eq!(
            trail.as_array().map(Vec::len),
            Some(1),
            "{filter}: {trail:#}"
        );
    }

    // Revision 2: three new images, one of which never becomes ready.
    let second = deploy(
        &stack,
        org,
        &env,
        json!({"images": {"web-1": "shop/web:2", "web-2": "shop/web:2", "web-7": "shop/web:fail-2"}}),
    )
    .await;
    assert_eq!(second.deployment.revision, 2);
    let run = finished(&stack, org, &second).await;
    assert_eq!(run.status, RunStatus::Failed, "{run:#?}");
    let error = run.error.as_deref().unwrap();
    assert!(error.contains("web-7"), "{error}");
    assert!(error.contains("rolled back to revision 1"), "{error}");
    assert_eq!(step(&run, "rollback/web-1").status, StepStatus::Succeeded);
    assert_eq!(step(&run, "rollback/web-7").status, StepStatus::Succeeded);
    // Back on revision 1 everywhere: the services that had rolled out too.
    let images = deployed_images(&stack);
    assert!(images.values().all(|i| i.ends_with(":1")), "{images:?}");
    let wait = std::time::Instant::now();
    while !all_ready(&stack) {
        assert!(wait.elapsed() < Duration::from_secs(10), "not ready again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let history = deployments(&stack, org, &env).await;
    assert_eq!(history[0]["revision"], 2);
    assert_eq!(history[0]["state"], "rolled_back", "{:#}", history[0]);
    assert_eq!(history[1]["state"], "deployed");
    let web_1: Vec<_> = kube
        .helm_releases("shop-prod")
        .into_iter()
        .filter(|r| r.name == "web-1")
        .collect();
    assert_eq!(
        web_1.last().map(|r| r.status.as_str()),
        Some("deployed"),
        "{web_1:?}"
    );

    // A rotated secret reaches the namespace and rolls the pods that read it.
    let digest = |d: &Value| {
        d["spec"]["template"]["metadata"]["annotations"]["windlass.dev/secrets-digest"].clone()
    };
    let api_before = kube.get("Deployment", "shop-prod", "api").unwrap();
    assert!(digest(&api_before).is_string(), "{api_before:#}");
    assert!(digest(&kube.get("Deployment", "shop-prod", "web-5").unwrap()).is_null());
    let rotated = "r0tated-passw0rd-for-the-shop";
    let (status, _, _) = stack
        .api
        .post(
            &format!("/v1/organizations/{org}/secrets"),
            json!({"name": "shop/db-password", "value": rotated}),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let third = deploy(
        &stack,
        org,
        &env,
        json!({"images": {"web-1": "shop/web:1", "web-2": "shop/web:1", "web-7": "shop/web:1"}}),
    )
    .await;
    let run = finished(&stack, org, &third).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    let api_after = kube.get("Deployment", "shop-prod", "api").unwrap();
    assert_ne!(digest(&api_before), digest(&api_after));
    assert!(
        api_after["metadata"]["generation"].as_i64()
            > api_before["metadata"]["generation"].as_i64()
    );
    let secret = kube.get("Secret", "shop-prod", "api-secrets").unwrap();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(secret["data"]["DATABASE_PASSWORD"].as_str().unwrap())
        .unwrap();
    assert_eq!(decoded, rotated.as_bytes());
    assert!(!api_after.to_string().contains(rotated));
}

#[tokio::test]
async fn deployments_of_one_environment_never_overlap_a_cancel_rolls_back_and_newer_supersede() {
    let stack = Stack::with_clusters().await;
    let (org, env, _) = shop_environment(&stack, 10).await;
    let kube = &stack.clusters.as_ref().unwrap().kube;
    let first = deploy(&stack, org, &env, json!({})).await;
    assert_eq!(
        finished(&stack, org, &first).await.status,
        RunStatus::Succeeded
    );

    // Two requests at once: the second waits for the first.
    kube.set_image_delays(vec![ImageDelay {
        marker: ":slow".into(),
        delay_ms: 1500,
    }]);
    let (a, b) = tokio::join!(
        deploy(
            &stack,
            org,
            &env,
            json!({"images": {"web-1": "shop/web:slow-a"}})
        ),
        deploy(
            &stack,
            org,
            &env,
            json!({"images": {"web-2": "shop/web:slow-b"}})
        ),
    );
    let (a, b) = (
        finished(&stack, org, &a).await,
        finished(&stack, org, &b).await,
    );
    assert_eq!(a.status, RunStatus::Succeeded, "{a:#?}");
    assert_eq!(b.status, RunStatus::Succeeded, "{b:#?}");
    let (earlier, later) = if a.finished_at < b.finished_at {
        (&a, &b)
    } else {
        (&b, &a)
    };
    let later_first_step = later
        .steps
        .iter()
        .map(|s| s.first_started_at)
        .min()
        .unwrap();
    let earlier_last_step = earlier
        .steps
        .iter()
        .filter_map(|s| s.finished_at)
        .max()
        .unwrap();
    assert!(
        later_first_step >= earlier_last_step,
        "the later deployment started {later_first_step} before the earlier ended {earlier_last_step}"
    );
    let revisions: Vec<_> = deployments(&stack, org, &env)
        .await
        .iter()
        .map(|d| (d["revision"].as_u64().unwrap(), d["state"].clone()))
        .collect();
    assert_eq!(
        revisions,
        vec![
            (3, json!("deployed")),
            (2, json!("deployed")),
            (1, json!("deployed"))
        ]
    );
    // Both requests' images landed, in revision order: revision 3 holds revision 2's
    // image too. (The two requests used to overwrite each other's image in the
    // environment, so revision 4 could hold an older web-2 than revision 3, and the
    // cancel below rolled web-2 to an image still 30 s from ready: a 1-in-4 failure.)
    let newest = &deployments(&stack, org, &env).await[0];
    let image = |name: &str| {
        newest["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap()["image"]
            .clone()
    };
    assert_eq!(
        (image("web-1"), image("web-2")),
        (json!("shop/web:slow-a"), json!("shop/web:slow-b")),
        "{newest:#}"
    );

    // Cancelled while a rollout is in progress: back to revision 3.
    kube.set_image_delays(vec![ImageDelay {
        marker: ":slow".into(),
        delay_ms: 30_000,
    }]);
    let images_before = deployed_images(&stack);
    let fourth = deploy(
        &stack,
        org,
        &env,
        json!({"images": {"web-3": "shop/web:slow-4"}}),
    )
    .await;
    let run_id = fourth.run.id;
    stack
        .wait_for_run(org, run_id, Duration::from_secs(60), |r| {
            r.steps.iter().any(|s| s.key == "deploy/web-3")
        })
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, _, cancelled) = stack
        .api
        .post(
            &format!("/v1/organizations/{org}/runs/{run_id}/cancel"),
            json!({}),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{cancelled}");
    let run = stack
        .wait_for_run(org, run_id, Duration::from_secs(60), |r| {
            r.finished_at.is_some()
        })
        .await;
    assert_eq!(run.status, RunStatus::Cancelled, "{run:#?}");
    assert_eq!(
        step(&run, "rollback/web-3").status,
        StepStatus::Succeeded,
        "{run:#?}"
    );
    assert_eq!(deployed_images(&stack), images_before);
    let history = deployments(&stack, org, &env).await;
    // On failure, every step's status and last error (an intermittent rollback failure
    // was seen here twice without them).
    let steps: Vec<String> = run
        .steps
        .iter()
        .map(|s| format!("{} {:?} {:?}", s.key, s.status, s.last_error))
        .collect();
    assert_eq!(
        history[0]["state"],
        "cancelled",
        "{:#}\nsteps:\n{}",
        history[0],
        steps.join("\n")
    );

    // A preview environment supersedes: of the requests waiting, only the newest runs.
    let (_, environment) = stack
        .api
        .get(&format!("/v1/organizations/{org}/environments/{env}"))
        .await;
    let (status, _, created) = stack
        .api
        .post(
            &format!(
                "/v1/organizations/{org}/projects/{}/environments",
                environment["project_id"].as_str().unwrap()
            ),
            json!({"name": "preview", "type": "preview", "cluster_id": environment["cluster_id"],
                   "deploy_policy": "supersede",
                   "services": [{"kind": "container_app", "name": "app", "image": "shop/app:slow-1", "port": 80}]}),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let preview = created["environment"]["id"].as_str().unwrap().to_owned();
    kube.set_image_delays(vec![ImageDelay {
        marker: ":slow".into(),
        delay_ms: 1500,
    }]);
    let running = deploy(&stack, org, &preview, json!({})).await;
    stack
        .wait_for_run(org, running.run.id, Duration::from_secs(60), |r| {
            r.steps.iter().any(|s| s.key == "deploy/app")
        })
        .await;
    let waiting = deploy(
        &stack,
        org,
        &preview,
        json!({"images": {"app": "shop/app:slow-2"}}),
    )
    .await;
    let newest = deploy(
        &stack,
        org,
        &preview,
        json!({"images": {"app": "shop/app:slow-3"}}),
    )
    .await;
    assert_eq!(
        finished(&stack, org, &running).await.status,
        RunStatus::Succeeded
    );
    let superseded = finished(&stack, org, &waiting).await;
    assert_eq!(superseded.status, RunStatus::Cancelled, "{superseded:#?}");
    assert!(
        superseded
            .error
            .as_deref()
            .unwrap()
            .contains(&newest.run.id.to_string()),
        "{superseded:#?}"
    );
    assert!(superseded.steps.is_empty());
    assert_eq!(
        finished(&stack, org, &newest).await.status,
        RunStatus::Succeeded
    );
    let states: Vec<_> = deployments(&stack, org, &preview)
        .await
        .iter()
        .map(|d| d["state"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(states, ["deployed", "superseded", "deployed"]);
    let app = kube.get("Deployment", "shop-preview", "app").unwrap();
    assert_eq!(
        app["spec"]["template"]["spec"]["containers"][0]["image"],
        "shop/app:slow-3"
    );
}

#[tokio::test]
async fn a_ci_pipeline_deploys_through_the_signed_webhook_and_a_bad_signature_is_refused() {
    let stack = Stack::with_clusters().await;
    let (org, env, secret) = shop_environment(&stack, 10).await;
    let url = format!(
        "{}/v1/webhooks/environments/{env}/deployments",
        stack.api.base
    );
    let body = json!({"images": {"web-1": "shop/web:ci-42"}}).to_string();
    let http = reqwest::Client::new();
    let send = |signature: String, key: &str, body: String| {
        http.post(&url)
            .header("content-type", "application/json")
            .header("windlass-signature", signature)
            .header("idempotency-key", key)
            .body(body)
            .send()
    };
    let sign = |secret: &str, at: i64, key: &str, body: &str| {
        windlass_api::webhooks::sign(secret, at, Some(key), body.as_bytes())
    };
    let now = chrono::Utc::now().timestamp();

    let forged = send(
        sign("whsec_guess", now, "pipeline-42", &body),
        "pipeline-42",
        body.clone(),
    )
    .await
    .unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    let stale = send(
        sign(&secret, now - 3600, "pipeline-42", &body),
        "pipeline-42",
        body.clone(),
    )
    .await
    .unwrap();
    assert_eq!(stale.status(), StatusCode::UNAUTHORIZED);
    // Five minutes in all: ten minutes apart is never inside one window.
    let ahead = send(
        sign(&secret, now + 290, "pipeline-42", &body),
        "pipeline-42",
        body.clone(),
    )
    .await
    .unwrap();
    assert_eq!(ahead.status(), StatusCode::UNAUTHORIZED);
    let tampered = send(
        sign(&secret, now, "pipeline-42", &body),
        "pipeline-42",
        body.replace("ci-42", "evil"),
    )
    .await
    .unwrap();
    assert_eq!(tampered.status(), StatusCode::UNAUTHORIZED);
    // Once a panic (overflow in the age computation): now a refusal like any other.
    let signed_at_min = sign(&secret, i64::MIN, "pipeline-42", &body);
    let overflow = send(signed_at_min, "pipeline-42", body.clone())
        .await
        .unwrap();
    assert_eq!(overflow.status(), StatusCode::UNAUTHORIZED);
    let raw_min = format!("t={},v2={}", i64::MIN, "00".repeat(32));
    let overflow = send(raw_min, "pipeline-42", body.clone()).await.unwrap();
    assert_eq!(overflow.status(), StatusCode::UNAUTHORIZED);
    assert!(deployments(&stack, org, &env).await.is_empty());

    let signed = sign(&secret, now, "pipeline-42", &body);
    let accepted = send(signed.clone(), "pipeline-42", body.clone())
        .await
        .unwrap();
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let started: DeploymentStarted = accepted.json().await.unwrap();
    assert_eq!(started.deployment.trigger, DeploymentTrigger::Webhook);
    // A captured call replayed: as it was, and with new Idempotency-Keys (which the
    // signature covers). None of them starts anything.
    for key in ["pipeline-42", "replay-1", "replay-2", "replay-3"] {
        let replayed = send(signed.clone(), key, body.clone()).await.unwrap();
        assert_eq!(replayed.status(), StatusCode::UNAUTHORIZED, "{key}");
    }
    // The pipeline retries, signing afresh with the same key: the same deployment.
    let retried = sign(&secret, now + 1, "pipeline-42", &body);
    let again = send(retried, "pipeline-42", body.clone()).await.unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    let again: DeploymentStarted = again.json().await.unwrap();
    assert_eq!(again.run.id, started.run.id);
    assert_eq!(
        deployments(&stack, org, &env).await.len(),
        1,
        "one deployment"
    );
    let run = finished(&stack, org, &started).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    assert_eq!(deployed_images(&stack)["web-1"], "shop/web:ci-42");
    // The environment keeps the image for its next deployment.
    let (_, environment) = stack
        .api
        .get(&format!("/v1/organizations/{org}/environments/{env}"))
        .await;
    assert!(environment.to_string().contains("shop/web:ci-42"));

    // A person at a terminal: `windlass deploy --follow` shows the steps and the live log
    // and exits with the deployment's outcome.
    let mut command = deploy_command(&stack, org, &env, "web-2=shop/web:cli-7");
    let deployed = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&deployed.stdout);
    assert!(deployed.status.success(), "{stdout}");
    assert!(stdout.contains("ok        deploy/web-2"), "{stdout}");
    assert!(
        stdout.contains("deployment/web-2: 1/1 available"),
        "{stdout}"
    );
    assert!(stdout.contains("succeeded"), "{stdout}");
    let mut command = deploy_command(&stack, org, &env, "web-3=shop/web:fail-cli");
    let failed = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&failed.stdout);
    assert_eq!(failed.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAILED    deploy/web-3"), "{stdout}");
    assert!(stdout.contains("rolled back to revision 2"), "{stdout}");

    // A flood of forged calls: counted, answered 429 once the environment's budget of
    // refusals is spent (the ten above count too), and not appended to the audit log one
    // by one (one summary entry per window, written when the window closes).
    let audited_before = refused_webhook_entries(&stack, org).await;
    let mut statuses = Vec::new();
    for attempt in 0..20 {
        let forged = sign("whsec_guess", now, &format!("flood-{attempt}"), &body);
        let answer = send(forged, &format!("flood-{attempt}"), body.clone())
            .await
            .unwrap();
        statuses.push(answer.status().as_u16());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        10,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        10,
        "{statuses:?}"
    );
    let metrics = http
        .get(format!("{}/metrics", stack.api.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("windlass_api_webhook_rate_limited_total 10"),
        "{metrics}"
    );
    // The call replayed as it was is a replay; under new keys it no longer matches.
    for (reason, count) in [
        ("replayed", 1),
        ("signature_mismatch", 15),
        ("outside_window", 2),
    ] {
        let line = format!("windlass_api_webhook_refusals_total{{reason=\"{reason}\"}} {count}");
        assert!(metrics.contains(&line), "{line} in {metrics}");
    }
    assert_eq!(refused_webhook_entries(&stack, org).await, audited_before);
}

/// Audit entries of refused webhook calls in the organisation.
async fn refused_webhook_entries(stack: &Stack, org: Uuid) -> usize {
    stack
        .store
        .audit_entries(org, &Default::default())
        .await
        .unwrap()
        .iter()
        .filter(|e| {
            e.action == "environments.deploy"
                && e.result == windlass_core::audit::AuditResult::Denied
        })
        .count()
}

const PLACED_SECRET: &str = "acme-api-key-7d1c";

/// The customer's own workload identity for its placed worker: an app registration in its
/// tenant whose federated credential trusts the customer's cluster issuer (an OIDC
/// stand-in here) for the worker's service account, with Storage Account Contributor on
/// the subscription; and the projected token file the worker reads.
struct CustomerWorkerIdentity {
    tenant_id: String,
    token_file: std::path::PathBuf,
    _issuer: windlass_standins::OidcIssuerStandIn,
}

impl CustomerWorkerIdentity {
    const CLIENT_ID: &str = "5b0c9a8e-6f1d-4c7e-9a3b-0d2e4f6a8c1b";
    const SUBJECT: &str = "system:serviceaccount:windlass:placed-worker";

    async fn grant(stack: &Stack, org: uuid::Uuid, account: uuid::Uuid) -> Self {
        use windlass_standins::azure::{
            Application, FederatedCredential, STORAGE_ACCOUNT_CONTRIBUTOR_ROLE_ID,
        };
        let account = stack.store.cloud_account(org, account).await.unwrap();
        let issuer = windlass_standins::OidcIssuerStandIn::start(0, "unused")
            .await
            .unwrap();
        let object_id = stack.azure.register_application(
            Application {
                app_id: Self::CLIENT_ID.to_owned(),
                home_tenant: account.tenant_id.clone(),
                display_name: "acme placed worker".to_owned(),
                multi_tenant: false,
                federated_credentials: vec![FederatedCredential {
                    name: "onprem-cluster".to_owned(),
                    issuer: issuer.issuer.clone(),
                    subject: Self::SUBJECT.to_owned(),
                    audiences: vec!["api://AzureADTokenExchange".to_owned()],
                }],
            },
            &[],
        );
        let subscription = format!("/subscriptions/{}", account.external_id);
        stack.azure.assign_role(
            &subscription,
            &format!(
                "{subscription}/providers/Microsoft.Authorization/roleDefinitions/{STORAGE_ACCOUNT_CONTRIBUTOR_ROLE_ID}"
            ),
            &object_id,
        );
        let token_file = stack.dir.path().join("acme-worker-azure-token");
        std::fs::write(
            &token_file,
            issuer.assertion(Self::SUBJECT, "api://AzureADTokenExchange", 3600),
        )
        .unwrap();
        Self {
            tenant_id: account.tenant_id,
            token_file,
            _issuer: issuer,
        }
    }
}

#[tokio::test]
async fn a_cluster_placed_in_a_customer_network_is_deployed_to_only_by_that_customers_worker() {
    let stack = Stack::with_clusters().await;
    let (org, account) = stack.organization_with_verified_azure_account().await;
    let (other_org, other_account) = stack.organization_with_verified_azure_account().await;

    // The placement is the organisation's: registered once, its credential shown once.
    let (status, _, registered) = stack
        .api
        .post(
            &format!("/v1/organizations/{org}/placements"),
            json!({"name": "acme-onprem"}),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{registered}");
    let credential = registered["credential"].as_str().unwrap().to_owned();
    assert!(credential.starts_with("wlp_"));
    let (_, listed) = stack
        .api
        .get(&format!("/v1/organizations/{org}/placements"))
        .await;
    assert_eq!(listed[0]["name"], "acme-onprem");
    assert!(!listed.to_string().contains(&credential));
    // Names are global (they are task queues): another organisation cannot take it, and
    // is not told whose it is.
    let (status, _, taken) = stack
        .api
        .post(
            &format!("/v1/organizations/{other_org}/placements"),
            json!({"name": "acme-onprem"}),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{taken}");
    assert!(!taken.to_string().contains(&org.to_string()), "{taken}");
    // Nor route its clusters there.
    let (status, _, refused) = stack
        .api
        .post(
            &format!("/v1/organizations/{other_org}/clusters"),
            json!({"name": "squat", "cloud_account_id": other_account, "region": "westeurope",
                   "kubernetes_version": "1.33", "placement": "acme-onprem"}),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    let audit = stack
        .store
        .audit_entries(other_org, &Default::default())
        .await
        .unwrap();
    assert!(
        audit.iter().any(|e| e.action == "clusters.create"
            && e.result == windlass_core::audit::AuditResult::Failed),
        "{audit:?}"
    );

    let (status, _, started) = stack
        .api
        .post(
            &format!("/v1/organizations/{org}/clusters"),
            json!({"name": "onprem", "cloud_account_id": account, "region": "westeurope",
                   "kubernetes_version": "1.33", "placement": "acme-onprem"}),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    assert_eq!(started["cluster"]["placement"], "acme-onprem");
    let run = stack
        .wait_for_run(org, id_of(&started["run"]), Duration::from_secs(300), |r| {
            r.finished_at.is_some()
        })
        .await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    let (status, _, _) = stack
        .api
        .post(
            &format!("/v1/organizations/{org}/secrets"),
            json!({"name": "acme/api-key", "value": PLACED_SECRET}),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, _, project) = stack
        .api
        .post(
            &format!("/v1/organizations/{org}/projects"),
            json!({"name": "acme"}),
            &[],
        )
        .await;
    let (status, _, created) = stack
        .api
        .post(
            &format!(
                "/v1/organizations/{org}/projects/{}/environments",
                project["id"].as_str().unwrap()
            ),
            json!({"name": "prod", "type": "production", "cluster_id": started["cluster"]["id"],
                   "services": [{"kind": "container_app", "name": "portal", "image": "acme/portal:1",
                                 "port": 80, "secrets": {"API_KEY": "acme/api-key"}}]}),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let env = created["environment"]["id"].as_str().unwrap().to_owned();

    // The shared workers (the in-process one here) never see it.
    let queued = deploy(&stack, org, &env, json!({})).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let waiting = deployments(&stack, org, &env).await;
    assert_eq!(waiting[0]["state"], "queued", "{:#}", waiting[0]);
    let run_id = queued.run.id;
    assert!(stack.run(org, run_id).await.steps.is_empty());

    // Another organisation's placed worker cannot read this run's secrets.
    let (status, _, other) = stack
        .api
        .post(
            &format!("/v1/organizations/{other_org}/placements"),
            json!({"name": "other-onprem"}),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{other}");
    let intruder = stack
        .api
        .with_token(Some(other["credential"].as_str().unwrap().to_owned()));
    let (status, _, denied) = intruder
        .post(
            &format!("/v1/placement/runs/{run_id}/secret"),
            json!({"name": "acme/api-key"}),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{denied}");
    assert!(!denied.to_string().contains(PLACED_SECRET));
    let audit = stack
        .store
        .audit_entries(other_org, &Default::default())
        .await
        .unwrap();
    assert!(
        audit.iter().any(|e| e.action == "placement.secret_read"
            && e.result == windlass_core::audit::AuditResult::Denied),
        "{audit:?}"
    );
    // The placement routes take a placement credential only: not a person's token, not none.
    let (status, _, _) = stack
        .api
        .post(
            &format!("/v1/placement/runs/{run_id}/secret"),
            json!({"name": "acme/api-key"}),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = stack
        .api
        .with_token(None)
        .post(
            &format!("/v1/placement/runs/{run_id}/secret"),
            json!({"name": "acme/api-key"}),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Nor can a placement credential act as a user.
    let (status, _) = intruder
        .get(&format!("/v1/organizations/{org}/secrets"))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The customer's own worker does, holding no database URL, no key-encryption key and
    // no Windlass signing key: it reaches its clusters' storage as the customer's own
    // workload identity (a federated credential trusting the customer's cluster issuer,
    // allowed on its subscription's storage), not as Windlass's platform application.
    let identity = CustomerWorkerIdentity::grant(&stack, org, account).await;
    let mut command = stack.cluster_worker_command("acme");
    // Nothing of the test runner's own database settings (the README's test command
    // exports the PostgreSQL URL the store suite uses) reaches the customer's worker.
    for (name, value) in std::env::vars() {
        if value.contains("postgres://") || value.contains("sqlite://") {
            command.env_remove(name);
        }
    }
    let customer = command
        .env_remove("WINDLASS_DATABASE_URL")
        .env_remove("WINDLASS_KEK_FILE")
        .env_remove("WINDLASS_WORKLOAD_IDENTITY_ISSUER")
        .env("WINDLASS_PLACEMENT", "acme-onprem")
        .env("WINDLASS_PLACEMENT_CREDENTIAL", &credential)
        .env("WINDLASS_API_URL", &stack.api.base)
        .env("AZURE_TENANT_ID", &identity.tenant_id)
        .env("AZURE_CLIENT_ID", CustomerWorkerIdentity::CLIENT_ID)
        .env("AZURE_FEDERATED_TOKEN_FILE", &identity.token_file)
        .spawn()
        .expect("spawn windlass worker");
    // Killed even if an assertion below fails, so no worker outlives the test.
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let pid = customer.id();
    let customer = KillOnDrop(customer);
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    for held in [&environ, &cmdline] {
        let text = String::from_utf8_lossy(held);
        assert!(!text.contains("WINDLASS_DATABASE_URL"), "{text}");
        assert!(!text.contains(&stack.database_url), "{text}");
        assert!(!text.contains("sqlite://") && !text.contains("postgres://"));
        assert!(
            !text.contains("WINDLASS_KEK_FILE") && !text.contains("kek"),
            "{text}"
        );
        assert!(!text.contains("WINDLASS_KMS"), "{text}");
    }
    let run = finished(&stack, org, &queued).await;
    drop(customer);
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    let kube = &stack.clusters.as_ref().unwrap().kube;
    assert!(kube.get("Deployment", "acme-prod", "portal").is_some());
    // The granted secret went through the API to the worker and into the namespace.
    let secret = kube
        .get("Secret", "acme-prod", "portal-secrets")
        .expect("portal-secrets");
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(secret["data"]["API_KEY"].as_str().unwrap())
        .unwrap();
    assert_eq!(decoded, PLACED_SECRET.as_bytes());
    // Its steps were journalled through the API like any worker's.
    let steps = stack.run(org, run_id).await.steps;
    assert!(
        steps.iter().any(|s| s.status == StepStatus::Succeeded),
        "{steps:#?}"
    );
    // Once finished, the run's secrets are no longer served, even to its own placement.
    let (status, _, _) = stack
        .api
        .with_token(Some(credential.clone()))
        .post(
            &format!("/v1/placement/runs/{run_id}/secret"),
            json!({"name": "acme/api-key"}),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // A placement is a plain name.
    let (status, _, refused) = stack
        .api
        .post(
            &format!("/v1/organizations/{org}/clusters"),
            json!({"name": "bad", "cloud_account_id": account, "region": "westeurope",
                   "kubernetes_version": "1.33", "placement": "Acme@Prod"}),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
}
