//! Ownership of cloud accounts, tried as an attacker organisation would: registering a
//! customer's tenant and subscription, running setup, teardown or a cluster against it.
//! Each attempt is refused (by the API, or by Entra ID and ARM, their stand-ins here), is
//! audited, and leaves the customer's tenant as it was.

use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;
use windlass_core::runs::RunStatus;
use windlass_core::workload_identity::{AZURE_TOKEN_EXCHANGE_AUDIENCE, WorkloadSubject};
use windlass_standins::azure::{Application, FederatedCredential};

use crate::support::{SETUP_IDENTITY, Stack, setup_request, teardown_request};

async fn audit(stack: &Stack, org: Uuid, action: &str) -> Vec<Value> {
    let (status, trail) = stack
        .api
        .get(&format!("/v1/organizations/{org}/audit?action={action}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{trail:#}");
    trail.as_array().unwrap().clone()
}

async fn verification(stack: &Stack, org: Uuid, account: &str) -> String {
    let (_, accounts) = stack
        .api
        .get(&format!("/v1/organizations/{org}/cloud-accounts"))
        .await;
    let account = accounts
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == account)
        .unwrap_or_else(|| panic!("no account {account} in {accounts:#}"));
    account["verification"].as_str().unwrap().to_owned()
}

fn problem_type(problem: &Value) -> &str {
    problem["type"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn a_subscription_verified_by_its_owner_cannot_be_registered_by_another_organization() {
    let stack = Stack::start().await;
    let victim = stack.organization().await;
    let tenant = stack.customer_tenant_trusting(victim);
    let (status, account) = stack.register_azure_account(victim, &tenant).await;
    assert_eq!(status, StatusCode::CREATED, "{account}");
    let account_id = account["id"].as_str().unwrap().to_owned();
    assert_eq!(account["verification"], "unverified");
    stack
        .set_up_access(victim, account_id.parse().unwrap())
        .await;
    assert_eq!(verification(&stack, victim, &account_id).await, "verified");

    let attacker = stack.organization().await;
    let (status, refused) = stack.register_azure_account(attacker, &tenant).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert!(
        problem_type(&refused).ends_with("/cloud-account-claimed"),
        "{refused}"
    );
    let text = refused.to_string();
    for secret in [victim.to_string(), account_id.clone()] {
        assert!(
            !text.contains(&secret),
            "the refusal names the owner: {text}"
        );
    }
    let (_, accounts) = stack
        .api
        .get(&format!("/v1/organizations/{attacker}/cloud-accounts"))
        .await;
    assert_eq!(accounts, json!([]), "nothing registered for the attacker");
    let entries = audit(&stack, attacker, "cloud_accounts.create").await;
    assert_eq!(entries.len(), 1, "{entries:#?}");
    assert_eq!(entries[0]["result"], "failed");
    assert_eq!(entries[0]["details"]["status"], 409);
}

#[tokio::test]
async fn an_attacker_registering_first_stays_unverified_because_entra_refuses_its_subject() {
    let stack = Stack::start().await;
    let victim = stack.organization().await;
    let tenant = stack.customer_tenant_trusting(victim);

    // The attacker registers the victim's tenant and subscription before the victim does:
    // nothing proves ownership yet, so the registration itself succeeds, unverified.
    let attacker = stack.organization().await;
    let (status, planted) = stack.register_azure_account(attacker, &tenant).await;
    assert_eq!(status, StatusCode::CREATED, "{planted}");
    let planted_id = planted["id"].as_str().unwrap().to_owned();
    let requests_before = stack.azure.requests().len();

    // Its setup authenticates as the victim's setup identity with the attacker's subject,
    // which the victim's federated credential does not name.
    let started = stack
        .start_run(attacker, setup_request(planted_id.parse().unwrap()), None)
        .await
        .unwrap();
    let run = stack.wait_until_finished(attacker, started.id).await;
    assert_eq!(run.status, RunStatus::Failed, "{run:#?}");
    let attacker_subject = WorkloadSubject::Organization(attacker).to_string();
    let attempts: Vec<_> = stack
        .azure
        .token_requests()
        .into_iter()
        .filter(|r| r.assertion_subject.as_deref() == Some(attacker_subject.as_str()))
        .collect();
    assert!(!attempts.is_empty(), "the setup asked Entra for a token");
    for attempt in &attempts {
        assert_eq!(attempt.tenant, tenant.tenant_id.to_string());
        assert_eq!(attempt.client_id, SETUP_IDENTITY);
        assert!(!attempt.granted);
        assert_eq!(attempt.error_code, Some(70021), "{attempt:?}");
        assert_eq!(
            attempt.assertion_issuer.as_deref(),
            Some(stack.issuer.issuer())
        );
    }
    assert!(
        run.steps.iter().any(|s| s
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("AADSTS70021"))),
        "{run:#?}"
    );
    // Without a token, nothing reached ARM or Graph.
    assert_eq!(stack.azure.requests().len(), requests_before);
    assert_eq!(
        verification(&stack, attacker, &planted_id).await,
        "unverified"
    );

    // The attacker's unverified claim cannot start cluster work, and does not stop the
    // victim from registering and verifying its own subscription.
    let (status, _, refused) = stack
        .api
        .post(
            &format!("/v1/organizations/{attacker}/clusters"),
            json!({"name": "planted", "cloud_account_id": planted_id,
                   "region": "westeurope", "kubernetes_version": "1.33"}),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert!(problem_type(&refused).ends_with("/cloud-account-unverified"));
    let (status, account) = stack.register_azure_account(victim, &tenant).await;
    assert_eq!(status, StatusCode::CREATED, "{account}");
    let account_id = account["id"].as_str().unwrap().to_owned();
    stack
        .set_up_access(victim, account_id.parse().unwrap())
        .await;
    assert_eq!(verification(&stack, victim, &account_id).await, "verified");
    assert_eq!(
        verification(&stack, attacker, &planted_id).await,
        "unverified"
    );
}

#[tokio::test]
async fn an_attacker_cannot_tear_down_the_victims_access() {
    let stack = Stack::start().await;
    let victim = stack.organization().await;
    let tenant = stack.customer_tenant_trusting(victim);
    let (_, account) = stack.register_azure_account(victim, &tenant).await;
    let account_id: Uuid = account["id"].as_str().unwrap().parse().unwrap();
    stack.set_up_access(victim, account_id).await;
    let before = stack.azure.state();

    // The verified subscription cannot be registered elsewhere; the same tenant with
    // another subscription can, unverified, and a teardown on it does not start.
    let attacker = stack.organization().await;
    let mut elsewhere = tenant.clone();
    elsewhere.subscription_id = Uuid::new_v4();
    let (status, planted) = stack.register_azure_account(attacker, &elsewhere).await;
    assert_eq!(status, StatusCode::CREATED, "{planted}");
    let planted: Uuid = planted["id"].as_str().unwrap().parse().unwrap();
    let refused = stack
        .start_run(attacker, teardown_request(planted), None)
        .await
        .unwrap_err();
    assert_eq!(refused.status, StatusCode::CONFLICT, "{refused}");
    assert!(refused.problem.kind.ends_with("/cloud-account-unverified"));
    let entries = audit(&stack, attacker, "runs.start").await;
    assert_eq!(entries.len(), 1, "{entries:#?}");
    assert_eq!(entries[0]["result"], "failed");

    // And a setup on it (to get verified) is refused by Entra: the victim's setup
    // identity trusts the victim's subject only.
    let started = stack
        .start_run(attacker, setup_request(planted), None)
        .await
        .unwrap();
    let run = stack.wait_until_finished(attacker, started.id).await;
    assert_eq!(run.status, RunStatus::Failed, "{run:#?}");

    let after = stack.azure.state();
    assert_eq!(
        serde_json::to_value(&after.service_principals).unwrap(),
        serde_json::to_value(&before.service_principals).unwrap(),
        "the victim's service principals are untouched"
    );
    assert_eq!(after.role_assignments, before.role_assignments);
    assert_eq!(after.role_definitions, before.role_definitions);
}

#[tokio::test]
async fn a_cluster_on_an_unverified_account_is_refused_audited_and_nothing_reaches_arm() {
    let stack = Stack::start().await;
    let (org, account) = stack.organization_with_azure_account().await;
    for dry_run in [false, true] {
        let (status, _, refused) = stack
            .api
            .post(
                &format!("/v1/organizations/{org}/clusters"),
                json!({"name": "prod", "cloud_account_id": account, "region": "westeurope",
                       "kubernetes_version": "1.33", "dry_run": dry_run}),
                &[],
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{refused}");
        assert!(
            problem_type(&refused).ends_with("/cloud-account-unverified"),
            "{refused}"
        );
    }
    let (_, clusters) = stack
        .api
        .get(&format!("/v1/organizations/{org}/clusters"))
        .await;
    assert_eq!(clusters, json!([]));
    let entries = [
        audit(&stack, org, "clusters.create").await,
        audit(&stack, org, "clusters.plan").await,
    ]
    .concat();
    assert_eq!(entries.len(), 2, "{entries:#?}");
    assert!(
        entries
            .iter()
            .all(|e| e["result"] == "failed" && e["details"]["status"] == 409),
        "{entries:#?}"
    );
    assert!(stack.azure.state().resource_groups.is_empty());
    assert!(stack.azure.requests().is_empty(), "no ARM call at all");
}

/// A token request and an ARM call as any HTTP client makes them, without Windlass's
/// Azure client: what the stand-ins enforce does not depend on who calls.
#[tokio::test]
async fn arm_refuses_a_principal_without_a_role_assignment() {
    let stack = Stack::without_worker().await;
    let org = stack.organization().await;
    let tenant = stack.customer_tenant_trusting(org);
    // An application the customer registered and trusts, but never granted a role.
    let app_id = Uuid::new_v4().to_string();
    let object_id = stack.azure.register_application(
        Application {
            app_id: app_id.clone(),
            home_tenant: tenant.tenant_id.to_string(),
            display_name: "unprivileged".into(),
            multi_tenant: false,
            federated_credentials: vec![FederatedCredential {
                name: "windlass".into(),
                issuer: stack.issuer.issuer().to_owned(),
                subject: WorkloadSubject::Organization(org).to_string(),
                audiences: vec![AZURE_TOKEN_EXCHANGE_AUDIENCE.into()],
            }],
        },
        &[],
    );
    let http = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(stack.azure.ca_cert_pem.as_bytes()).unwrap(),
        )
        .build()
        .unwrap();
    let token_url = format!(
        "{}/{}/oauth2/v2.0/token",
        stack.azure.base_url, tenant.tenant_id
    );
    let ask = |assertion: String, client_id: String| {
        let http = http.clone();
        let token_url = token_url.clone();
        async move {
            let form = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("grant_type", "client_credentials")
                .append_pair("client_id", &client_id)
                .append_pair("scope", "https://management.azure.com/.default")
                .append_pair(
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                )
                .append_pair("client_assertion", &assertion)
                .finish();
            let response = http
                .post(&token_url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form)
                .send()
                .await
                .unwrap();
            (response.status(), response.json::<Value>().await.unwrap())
        }
    };
    let assertion = stack
        .issuer
        .mint(
            WorkloadSubject::Organization(org),
            AZURE_TOKEN_EXCHANGE_AUDIENCE,
        )
        .await
        .unwrap();

    // Entra's refusals first: an application not in the directory, then the platform's
    // subject, which this application does not trust.
    let (status, unknown) = ask(assertion.clone(), Uuid::new_v4().to_string()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{unknown}");
    assert_eq!(unknown["error"], "unauthorized_client");
    assert_eq!(unknown["error_codes"], json!([700016]));
    assert!(
        unknown["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS700016: Application with identifier")
    );
    let platform = stack
        .issuer
        .mint(WorkloadSubject::Platform, AZURE_TOKEN_EXCHANGE_AUDIENCE)
        .await
        .unwrap();
    let (status, mismatch) = ask(platform, app_id.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{mismatch}");
    assert_eq!(mismatch["error"], "invalid_request");
    assert_eq!(mismatch["error_codes"], json!([70021]));
    assert!(
        mismatch["error_description"]
            .as_str()
            .unwrap()
            .contains("Assertion Subject: 'windlass:platform'")
    );

    let (status, granted) = ask(assertion, app_id).await;
    assert_eq!(status, StatusCode::OK, "{granted}");
    let token = granted["access_token"].as_str().unwrap();
    let scope = format!(
        "/subscriptions/{}/resourceGroups/stolen",
        tenant.subscription_id
    );
    let response = http
        .put(format!(
            "{}{scope}?api-version=2021-04-01",
            stack.azure.base_url
        ))
        .bearer_auth(token)
        .json(&json!({"location": "westeurope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "AuthorizationFailed", "{body}");
    assert_eq!(
        body["error"]["message"].as_str().unwrap(),
        format!(
            "The client '{object_id}' with object id '{object_id}' does not have authorization \
             to perform action 'Microsoft.Resources/subscriptions/resourceGroups/write' over \
             scope '{scope}' or the scope is invalid. If access was recently granted, please \
             refresh your credentials."
        )
    );
    assert!(stack.azure.state().resource_groups.is_empty());
}
