//! Ownership of AWS accounts, tried as an attacker organisation would: registering a
//! customer's AWS account and asking Windlass to verify it or run a cluster in it. The
//! customer's role trusts Windlass only with the customer's organisation's ExternalId;
//! moto does not check that, the STS trust-policy stand-in in front of it does, as STS
//! would. Each attempt is refused, audited, and leaves the account unclaimed.

use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;
use windlass_core::cloud_accounts::{aws_external_id, aws_role_arn};
use windlass_core::runs::{RunStatus, StepStatus};
use windlass_standins::moto::ACCOUNT_ID;
use windlass_test_support::client::output;

use crate::support::{AwsBed, KillOnDrop, Stack, step};

async fn audit(stack: &Stack, org: Uuid, action: &str) -> Vec<Value> {
    let (status, trail) = stack
        .api
        .get(&format!("/v1/organizations/{org}/audit?action={action}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{trail:#}");
    trail.as_array().unwrap().clone()
}

async fn account(stack: &Stack, org: Uuid, id: Uuid) -> Value {
    let (_, accounts) = stack
        .api
        .get(&format!("/v1/organizations/{org}/cloud-accounts"))
        .await;
    accounts
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id.to_string())
        .unwrap_or_else(|| panic!("no account {id} in {accounts:#}"))
        .clone()
}

fn problem_type(problem: &Value) -> &str {
    problem["type"].as_str().unwrap_or_default()
}

fn id(value: &Value) -> Uuid {
    value["id"].as_str().unwrap().parse().unwrap()
}

/// A stack whose `windlass worker` reaches moto through the trust-policy stand-in.
async fn stack_with_aws() -> (Stack, AwsBed, KillOnDrop) {
    let stack = Stack::without_worker().await;
    let aws = AwsBed::start().await;
    let mut worker = stack.worker_process_command();
    aws.configure(&mut worker);
    let worker = KillOnDrop(worker.spawn().expect("spawn windlass worker"));
    (stack, aws, worker)
}

async fn create_cluster(stack: &Stack, org: Uuid, account: Uuid) -> (StatusCode, Value) {
    let (status, _, body) = stack
        .api
        .post(
            &format!("/v1/organizations/{org}/clusters"),
            json!({"name": "planted", "cloud_account_id": account,
                   "region": "eu-west-3", "kubernetes_version": "1.33"}),
            &[],
        )
        .await;
    (status, body)
}

#[tokio::test]
async fn an_attacker_cannot_verify_a_victims_aws_account_and_the_verified_account_cannot_be_claimed()
 {
    let (stack, aws, _worker) = stack_with_aws().await;
    let victim = stack.organization().await;
    let role_arn = aws.role_trusting(&[victim]).await;
    assert_eq!(role_arn, aws_role_arn(ACCOUNT_ID));

    // The attacker registers the victim's account first: nothing proves ownership yet.
    let attacker = stack.organization().await;
    let (status, planted) = stack.register_aws_account(attacker).await;
    assert_eq!(status, StatusCode::CREATED, "{planted}");
    assert_eq!(planted["verification"], "unverified");
    let planted = id(&planted);

    // Its verification presents the attacker's ExternalId, which the victim's trust policy
    // does not name: STS (the stand-in) refuses, and the run fails at once, terminally.
    let run = stack.verify_aws_account(attacker, planted).await;
    assert_eq!(run.status, RunStatus::Failed, "{run:#?}");
    let assume = step(&run, "assume-role");
    assert_eq!(assume.status, StepStatus::Failed, "{run:#?}");
    assert_eq!(
        assume.attempts, 1,
        "a refusing role is not retried: {run:#?}"
    );
    let error = run.error.as_deref().unwrap();
    let attacker_external_id = aws_external_id(attacker);
    for expected in [
        "AccessDenied",
        &format!("is not authorized to perform: sts:AssumeRole on resource: {role_arn}"),
        &format!("The trust policy of {role_arn} must allow Windlass"),
        &format!("sts:ExternalId = \"{attacker_external_id}\""),
    ] {
        assert!(error.contains(expected), "{expected:?} not in {error}");
    }
    assert!(
        !error.contains(&victim.to_string()),
        "the refusal names the owner: {error}"
    );
    let refused_run = run.id;
    let attempts = aws.sts.attempts();
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    assert_eq!(attempts[0].role_arn, role_arn);
    assert_eq!(
        attempts[0].external_id.as_deref(),
        Some(attacker_external_id.as_str())
    );
    assert!(!attempts[0].allowed);
    assert_eq!(
        account(&stack, attacker, planted).await["verification"],
        "unverified"
    );
    let entries = audit(&stack, attacker, "cloud_accounts.verify").await;
    assert_eq!(entries.len(), 1, "{entries:#?}");
    assert_eq!(entries[0]["result"], "failed");
    assert_eq!(entries[0]["details"]["proof"], "aws_assume_role");
    assert_eq!(entries[0]["resource"], format!("cloud_account:{planted}"));
    let finished = audit(&stack, attacker, "workflow.finished").await;
    assert_eq!(finished.len(), 1, "{finished:#?}");
    assert_eq!(finished[0]["result"], "failed");
    assert_eq!(finished[0]["details"]["workflow"], "aws_access_verify");

    // No cluster run starts on the unverified claim.
    let (status, refused) = create_cluster(&stack, attacker, planted).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert!(
        problem_type(&refused).ends_with("/cloud-account-unverified"),
        "{refused}"
    );
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("run aws_access_verify"),
        "{refused}"
    );
    let (_, runs) = stack
        .api
        .get(&format!(
            "/v1/organizations/{attacker}/runs?workflow=provision_cluster"
        ))
        .await;
    assert_eq!(runs, json!([]));

    // The victim registers and verifies its own account: its ExternalId is the trusted one.
    let (status, owned) = stack.register_aws_account(victim).await;
    assert_eq!(status, StatusCode::CREATED, "{owned}");
    let owned = id(&owned);
    let run = stack.verify_aws_account(victim, owned).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    assert_eq!(output(&run)["account_id"], ACCOUNT_ID);
    assert_eq!(output(&run)["external_id"], aws_external_id(victim));
    assert!(
        output(&run)["assumed_role_arn"]
            .as_str()
            .unwrap()
            .starts_with(&format!(
                "arn:aws:sts::{ACCOUNT_ID}:assumed-role/windlass-access/"
            )),
        "{run:#?}"
    );
    let verified = account(&stack, victim, owned).await;
    assert_eq!(verified["verification"], "verified");
    assert!(verified["verified_at"].is_string());
    let entries = audit(&stack, victim, "cloud_accounts.verify").await;
    assert_eq!(entries.len(), 1, "{entries:#?}");
    assert_eq!(entries[0]["result"], "success");
    assert_eq!(entries[0]["details"]["proof"], "aws_assume_role");
    assert_eq!(entries[0]["details"]["run_id"], run.id.to_string());

    // Now the account is claimed: a third organisation cannot register it, and is not
    // told by whom.
    let third = stack.organization().await;
    let (status, refused) = stack.register_aws_account(third).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert!(
        problem_type(&refused).ends_with("/cloud-account-claimed"),
        "{refused}"
    );
    let text = refused.to_string();
    for owner in [
        victim.to_string(),
        owned.to_string(),
        aws_external_id(victim),
    ] {
        assert!(
            !text.contains(&owner),
            "the refusal names the owner: {text}"
        );
    }
    let (_, accounts) = stack
        .api
        .get(&format!("/v1/organizations/{third}/cloud-accounts"))
        .await;
    assert_eq!(accounts, json!([]));
    // And the attacker's old claim stays unverified and unusable.
    assert_eq!(
        account(&stack, attacker, planted).await["verification"],
        "unverified"
    );

    // A refused and a succeeded verification replay against the current code.
    crate::histories::record_histories(
        &stack,
        "aws_access_verify_refused_then_verified",
        &[format!("run-{refused_run}"), format!("run-{}", run.id)],
    )
    .await;
}

/// A customer whose trust policy names two organisations' ExternalIds: both can assume the
/// role, but only the first to verify holds the claim. The second run ends failed without
/// naming the first.
#[tokio::test]
async fn the_second_organization_to_verify_an_aws_account_loses_without_learning_who_won() {
    let (stack, aws, _worker) = stack_with_aws().await;
    let (first, second) = (stack.organization().await, stack.organization().await);
    aws.role_trusting(&[first, second]).await;
    let (_, first_account) = stack.register_aws_account(first).await;
    let (_, second_account) = stack.register_aws_account(second).await;
    let run = stack.verify_aws_account(first, id(&first_account)).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");

    let run = stack.verify_aws_account(second, id(&second_account)).await;
    assert_eq!(run.status, RunStatus::Failed, "{run:#?}");
    assert_eq!(step(&run, "assume-role").status, StepStatus::Succeeded);
    let error = run.error.as_deref().unwrap();
    assert!(
        error.contains("the AssumeRole succeeded but the account cannot be verified"),
        "{error}"
    );
    assert!(!error.contains(&first.to_string()), "{error}");
    assert!(!error.contains(&id(&first_account).to_string()), "{error}");
    assert_eq!(
        account(&stack, second, id(&second_account)).await["verification"],
        "unverified"
    );
    let entries = audit(&stack, second, "cloud_accounts.verify").await;
    assert_eq!(entries.len(), 1, "{entries:#?}");
    assert_eq!(entries[0]["result"], "failed");
    assert!(!entries[0].to_string().contains(&first.to_string()));
}

#[tokio::test]
async fn a_cluster_on_an_unverified_aws_account_is_refused_and_audited() {
    let stack = Stack::without_worker().await;
    let org = stack.organization().await;
    let (status, account) = stack.register_aws_account(org).await;
    assert_eq!(status, StatusCode::CREATED, "{account}");
    let account = id(&account);
    for dry_run in [false, true] {
        let (status, _, refused) = stack
            .api
            .post(
                &format!("/v1/organizations/{org}/clusters"),
                json!({"name": "prod", "cloud_account_id": account, "region": "eu-west-3",
                       "kubernetes_version": "1.33", "dry_run": dry_run}),
                &[],
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{refused}");
        assert!(
            problem_type(&refused).ends_with("/cloud-account-unverified"),
            "{refused}"
        );
        let detail = refused["detail"].as_str().unwrap();
        for expected in [
            "run aws_access_verify".to_owned(),
            aws_role_arn(ACCOUNT_ID),
            aws_external_id(org),
        ] {
            assert!(detail.contains(&expected), "{expected:?} not in {detail}");
        }
    }
    let (_, clusters) = stack
        .api
        .get(&format!("/v1/organizations/{org}/clusters"))
        .await;
    assert_eq!(clusters, json!([]));
    let (_, runs) = stack
        .api
        .get(&format!("/v1/organizations/{org}/runs"))
        .await;
    assert_eq!(runs, json!([]));
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
}

/// Azure's setup and AWS's verification each need their own kind of account.
#[tokio::test]
async fn a_verification_needs_an_aws_account() {
    let stack = Stack::without_worker().await;
    let (org, azure) = stack.organization_with_azure_account().await;
    let refused = stack
        .start_run(org, crate::support::aws_verify_request(azure), None)
        .await
        .unwrap_err();
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{refused}"
    );
    assert!(
        refused
            .problem
            .detail
            .contains("aws_access_verify needs an AWS cloud account"),
        "{refused}"
    );
}
