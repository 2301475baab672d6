//! EKS tokens end to end: the worker signs one with the organisation's assumed-role
//! credentials (`windlass_activities::aws::eks_token`), and the Kubernetes stand-in
//! verifies it as EKS's authenticator does, by calling STS (the trust-policy stand-in in
//! front of moto) with it. A token pointing at another STS is refused.

use uuid::Uuid;
use windlass_activities::aws::eks_token;
use windlass_activities::aws::{AssumedRoleProvider, StandInCredentials};
use windlass_standins::kube::{KubeStandIn, KubeStandInConfig};
use windlass_test_support::AwsBed;

async fn list_namespaces(kube: &KubeStandIn, token: &str) -> reqwest::StatusCode {
    let http = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(kube.ca_cert_pem().as_bytes()).unwrap(),
        )
        .build()
        .unwrap();
    http.get(format!("{}/api/v1/namespaces", kube.url()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn a_token_the_worker_signs_is_accepted_and_one_for_another_sts_is_not() {
    let aws = AwsBed::start().await;
    let sts = &aws.sts;
    let kube = KubeStandIn::start(KubeStandInConfig::default())
        .await
        .unwrap();
    kube.accept_eks_tokens_from(&sts.endpoint()).unwrap();
    let org = Uuid::new_v4();
    let role = aws.role_trusting(&[org]).await;
    let roles =
        AssumedRoleProvider::new(Some(sts.endpoint()), Some(StandInCredentials::moto())).await;
    let credentials = roles.credentials(org, &role).await.unwrap();

    let token = eks_token::mint(&credentials, &sts.endpoint(), "eu-west-3", "prod").unwrap();
    assert_eq!(
        list_namespaces(&kube, &token).await,
        reqwest::StatusCode::OK
    );
    assert_eq!(
        kube.eks_token_callers(),
        [format!(
            "arn:aws:sts::123456789012:assumed-role/windlass-access/windlass-{org}"
        )]
    );

    let elsewhere =
        eks_token::mint(&credentials, "http://127.0.0.1:9", "eu-west-3", "prod").unwrap();
    assert_eq!(
        list_namespaces(&kube, &elsewhere).await,
        reqwest::StatusCode::UNAUTHORIZED
    );
}
