//! The AWS account tests act in: moto, behind the stand-in that enforces roles' trust
//! policies on AssumeRole as STS does (moto does not).

use uuid::Uuid;
use windlass_core::cloud_accounts::{AWS_ROLE_NAME, aws_external_id};
use windlass_standins::kube::KubeStandIn;
use windlass_standins::moto::{Moto, MotoOptions};
use windlass_standins::sts_trust::StsTrustStandIn;

/// moto behind the STS trust-policy stand-in.
pub struct AwsBed {
    pub moto: Moto,
    pub sts: StsTrustStandIn,
}

impl AwsBed {
    pub async fn start() -> Self {
        let moto = Moto::start().await.expect("moto: run scripts/setup.sh");
        let sts = StsTrustStandIn::start(&moto.endpoint()).await.unwrap();
        Self { moto, sts }
    }

    /// As [`AwsBed::start`], for EKS clusters: moto with AWS's managed policies answers
    /// every EKS cluster with `kube` as its API server, and `kube` takes EKS tokens
    /// verified by this bed's STS.
    pub async fn start_for_clusters(kube: &KubeStandIn) -> Self {
        Self::start_for_clusters_with(kube, MotoOptions::default()).await
    }

    /// As [`AwsBed::start_for_clusters`], with `options` for moto (its endpoint for EKS
    /// clusters and AWS's managed policies are set here).
    pub async fn start_for_clusters_with(kube: &KubeStandIn, options: MotoOptions) -> Self {
        let moto = Moto::start_with(MotoOptions {
            aws_managed_policies: true,
            eks_cluster_endpoint: Some((kube.url().to_owned(), kube.ca_cert_pem().to_owned())),
            ..options
        })
        .await
        .expect("moto: run scripts/setup.sh");
        let sts = StsTrustStandIn::start(&moto.endpoint()).await.unwrap();
        kube.accept_eks_tokens_from(&sts.endpoint()).unwrap();
        Self { moto, sts }
    }

    /// The customer's role `windlass-access`, trusting `orgs`' ExternalIds.
    pub async fn role_trusting(&self, orgs: &[Uuid]) -> String {
        let ids: Vec<String> = orgs.iter().map(|org| aws_external_id(*org)).collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        self.moto
            .create_role_trusting(AWS_ROLE_NAME, &ids)
            .await
            .unwrap()
    }

    /// Points a `windlass worker` at the stand-in (and through it moto), with static
    /// credentials moto accepts and nothing read from the machine's AWS configuration.
    pub fn configure(&self, command: &mut std::process::Command) {
        command
            .env("WINDLASS_AWS_ENDPOINT_URL", self.sts.endpoint())
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", "/nonexistent/windlass-test/config")
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                "/nonexistent/windlass-test/credentials",
            );
    }
}
