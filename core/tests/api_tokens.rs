//! API tokens for machine clients, on SQLite and PostgreSQL.

use chrono::Duration;
use uuid::Uuid;
use windlass_core::rbac::{BuiltInRole, Role};
use windlass_core::{Error, Store};

#[macro_use]
mod support;

on_both_databases!(
    a_token_authenticates_until_it_is_revoked,
    expired_and_made_up_tokens_are_refused_alike,
    tokens_are_stored_only_as_hashes,
);

fn devops() -> Role {
    Role::BuiltIn {
        role: BuiltInRole::DevOps,
    }
}

async fn organization(store: &Store) -> Uuid {
    store
        .create_organization(&format!("acme-{}", Uuid::new_v4()))
        .await
        .unwrap()
        .id
}

async fn a_token_authenticates_until_it_is_revoked(store: &Store) {
    let org = organization(store).await;
    let (issued, secret) = store
        .issue_api_token(org, "ci-pipeline", &devops(), Duration::days(30))
        .await
        .unwrap();
    let presented = store.authenticate_api_token(&secret).await.unwrap();
    assert_eq!(presented.id, issued.id);
    assert_eq!(presented.organization_id, org);
    assert_eq!(presented.role, devops());
    assert!(matches!(
        store
            .issue_api_token(org, "ci-pipeline", &devops(), Duration::days(1))
            .await,
        Err(Error::Conflict(_))
    ));
    // Another organisation cannot revoke it.
    let other = organization(store).await;
    assert!(matches!(
        store.revoke_api_token(other, issued.id).await,
        Err(Error::NotFound { .. })
    ));
    store.revoke_api_token(org, issued.id).await.unwrap();
    assert!(matches!(
        store.authenticate_api_token(&secret).await,
        Err(Error::Forbidden(_))
    ));
}

async fn expired_and_made_up_tokens_are_refused_alike(store: &Store) {
    let org = organization(store).await;
    let (_, short) = store
        .issue_api_token(org, "short", &devops(), Duration::milliseconds(200))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let expired = store.authenticate_api_token(&short).await.unwrap_err();
    let mut forged = short.to_string();
    forged.pop();
    forged.push('0');
    let made_up = store.authenticate_api_token(&forged).await.unwrap_err();
    assert_eq!(expired.to_string(), made_up.to_string());
    assert!(matches!(
        store.authenticate_api_token("Bearer nonsense").await,
        Err(Error::Forbidden(_))
    ));
    for lifetime in [Duration::zero(), Duration::days(400)] {
        assert!(matches!(
            store.issue_api_token(org, "x", &devops(), lifetime).await,
            Err(Error::InvalidInput(_))
        ));
    }
}

async fn tokens_are_stored_only_as_hashes(store: &Store) {
    let org = organization(store).await;
    let (_, secret) = store
        .issue_api_token(org, "script", &devops(), Duration::days(1))
        .await
        .unwrap();
    let random_part = secret.rsplit('_').next().unwrap().to_owned();
    let stored: Vec<String> = sqlx::query_scalar("SELECT token_hash FROM api_tokens")
        .fetch_all(store.pool_for_tests())
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert!(!stored[0].contains(&random_part));
    assert_ne!(stored[0], secret.as_str());
}
