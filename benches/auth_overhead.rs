//! What authentication, authorisation and auditing add to one API call on the embedded
//! default (SQLite): verify an OIDC token (JWKS cached), look up the caller's roles, check
//! the permission, and append the audit entry — the steps a state-changing call pays.
//! Prints p50/p99 per call for each step and for the sum (target: under 1 ms).
//! `cargo bench --bench auth_overhead` (N: BENCH_CALLS).

use std::time::{Duration, Instant};

use uuid::Uuid;
use windlass_api::oidc::{OidcVerifier, TrustedIssuer, pseudonymous_subject};
use windlass_core::Store;
use windlass_core::audit::{ActorKind, AuditResult, NewAuditEntry};
use windlass_core::rbac::{self, BuiltInRole, Permission, Role, Target};
use windlass_standins::OidcIssuerStandIn;

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

fn report(label: &str, samples: &mut [Duration]) {
    println!(
        "{label:<28} p50 {:>8.3} ms   p99 {:>8.3} ms",
        percentile(samples, 0.50).as_secs_f64() * 1e3,
        percentile(samples, 0.99).as_secs_f64() * 1e3
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(bench());
}

async fn bench() {
    let calls: usize = std::env::var("BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&format!(
        "sqlite://{}",
        dir.path().join("auth.db").display()
    ))
    .await
    .unwrap();
    store.migrate().await.unwrap();
    let org = store.create_organization("bench").await.unwrap().id;
    let idp = OidcIssuerStandIn::start(0, "windlass-bench").await.unwrap();
    store
        .bind_role(
            org,
            &pseudonymous_subject(&idp.issuer, "bench"),
            &Role::BuiltIn {
                role: BuiltInRole::DevOps,
            },
        )
        .await
        .unwrap();
    let verifier = OidcVerifier::new(vec![TrustedIssuer {
        issuer: idp.issuer.clone(),
        audience: idp.audience.clone(),
        jwks_uri: idp.jwks_uri.clone(),
    }]);
    let token = idp.token("bench", &["developers"], 3600);
    verifier.verify(&token).await.unwrap(); // fills the JWKS cache, as a warm API has

    let (mut verify, mut roles, mut check, mut audit, mut total) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..calls {
        let t0 = Instant::now();
        let identity = verifier.verify(&token).await.unwrap();
        let t1 = Instant::now();
        let bound = store
            .roles_of(org, &identity.subject, None, &identity.groups)
            .await
            .unwrap();
        let t2 = Instant::now();
        assert!(rbac::allows(
            &bound,
            Permission::RunsStart,
            &Target::default()
        ));
        let t3 = Instant::now();
        store
            .append_audit(NewAuditEntry {
                organization_id: Some(org),
                actor: identity.subject.clone(),
                actor_kind: ActorKind::User,
                action: "runs.start".into(),
                resource: format!("run:{}", Uuid::new_v4()),
                cluster_id: None,
                project_id: None,
                environment: None,
                service: None,
                client: Some("bench".into()),
                ip: Some("127.0.0.1".into()),
                result: AuditResult::Success,
                details: serde_json::json!({"i": i}),
            })
            .await
            .unwrap();
        let t4 = Instant::now();
        verify.push(t1 - t0);
        roles.push(t2 - t1);
        check.push(t3 - t2);
        audit.push(t4 - t3);
        total.push(t4 - t0);
    }
    println!("\nauthentication + authorisation + audit per API call, {calls} calls, SQLite");
    report("verify OIDC token (ES256)", &mut verify);
    report("look up roles", &mut roles);
    report("check permission", &mut check);
    report("append audit entry", &mut audit);
    report("total added per call", &mut total);
    assert!(
        store
            .verify_audit_chain()
            .await
            .unwrap()
            .first_break
            .is_none()
    );
}
