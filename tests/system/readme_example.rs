//! The README's example environment, taken from the README itself, deploys as the
//! embedded default deploys it: its user chart comes from the local chart repository
//! (a stand-in for Bitnami's, serving `charts/examples/redis`), and every service reaches
//! the cluster (the Kubernetes stand-in's own record of releases).

use reqwest::StatusCode;
use serde_json::{Value, json};
use windlass_core::runs::RunStatus;
use windlass_standins::chart_repository::ChartRepository;

use crate::deployments::{
    allow_plain_http_charts, deploy, finished, provisioned_cluster, shop_project,
};
use crate::support::{Stack, repo_root};

/// Where `windlass dev` serves its chart repository, as the README's example names it.
const DEV_CHART_REPOSITORY: &str = "http://127.0.0.1:8091";

/// The body of the README's `POST .../environments` example.
fn readme_environment() -> String {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let call = readme
        .find("/projects/$PROJECT/environments")
        .expect("the README creates an environment");
    let start = call + readme[call..].find("-d '").expect("with a body") + 4;
    let end = start + readme[start..].find('\'').expect("a closed body");
    readme[start..end].to_owned()
}

#[tokio::test]
async fn the_readmes_example_environment_deploys_with_its_chart_from_a_local_repository() {
    let stack = Stack::with_clusters().await;
    let repository_dir = stack.dir.path().join("chart-repository");
    let repository = ChartRepository::start(
        &repo_root().join(".tools/bin/helm"),
        &[repo_root().join("charts/examples/redis")],
        &repository_dir,
        0,
    )
    .await
    .expect("the chart repository stand-in (scripts/setup.sh installs helm)");

    let (org, account) = stack.organization_with_verified_azure_account().await;
    let cluster = provisioned_cluster(&stack, org, account).await;
    // As `windlass dev` sets it for its demo organisation: the repository is plain HTTP.
    allow_plain_http_charts(&stack, org).await;
    let project = shop_project(&stack, org, "the-readme-password").await;

    let body = readme_environment()
        .replace("<cluster>", &cluster)
        .replace(DEV_CHART_REPOSITORY, &repository.url);
    let body: Value = serde_json::from_str(&body).expect("the README's example is JSON");
    let (status, _, created) = stack
        .api
        .post(
            &format!("/v1/organizations/{org}/projects/{project}/environments"),
            body.clone(),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let env = created["environment"]["id"].as_str().unwrap();
    let namespace = created["environment"]["namespace"].as_str().unwrap();

    let started = deploy(&stack, org, env, json!({})).await;
    let run = finished(&stack, org, &started).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");

    // Every service of the example is a release in the cluster, the chart at the version
    // the example asks for.
    let releases = stack
        .clusters
        .as_ref()
        .unwrap()
        .kube
        .helm_releases(namespace);
    for service in body["services"].as_array().unwrap() {
        let name = service["name"].as_str().unwrap();
        let release = releases
            .iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("no release {name} in {releases:?}"));
        assert_eq!(release.status, "deployed", "{release:?}");
    }
    // The chart came from the repository: its Deployment runs the chart's image.
    let kube = &stack.clusters.as_ref().unwrap().kube;
    let master = kube
        .get("Deployment", namespace, "cache-master")
        .expect("the redis chart's Deployment");
    assert_eq!(
        master["spec"]["template"]["spec"]["containers"][0]["image"],
        "docker.io/bitnami/redis:7.4.0"
    );
}
