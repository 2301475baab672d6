//! OIDC bearer tokens against a local issuer: a JWKS endpoint on loopback serving keys
//! generated here, and tokens signed with them (ES256), as an IdP would issue them.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use windlass_api::oidc::{OidcVerifier, TokenError, TrustedIssuer};

const ISSUER: &str = "https://idp.example.test";
const AUDIENCE: &str = "windlass-api";

struct SigningKey {
    kid: String,
    pkcs8: Vec<u8>,
    jwk: Value,
}

fn signing_key(kid: &str) -> SigningKey {
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .unwrap()
            .as_ref()
            .to_vec();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8).unwrap();
    let point = pair.public_key().as_ref();
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    SigningKey {
        kid: kid.into(),
        jwk: json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..65]),
                    "kid": kid, "alg": "ES256", "use": "sig"}),
        pkcs8,
    }
}

fn token(key: &SigningKey, claims: Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ec_der(&key.pkcs8)).unwrap()
}

fn claims(overrides: Value) -> Value {
    let now = jsonwebtoken::get_current_timestamp();
    let mut claims = json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "alice@example.com",
                            "exp": now + 600, "iat": now, "groups": ["platform-admins"]});
    for (k, v) in overrides.as_object().unwrap() {
        claims[k] = v.clone();
    }
    claims
}

/// The IdP's JWKS endpoint; `keys` can be rotated while it runs.
struct Issuer {
    keys: Arc<Mutex<Vec<Value>>>,
    fetches: Arc<AtomicUsize>,
    /// How long each answer takes (an IdP having a bad day).
    delay_ms: Arc<AtomicU64>,
    /// Answer 503 instead of the keys.
    down: Arc<AtomicBool>,
    jwks_uri: String,
}

async fn issuer(initial: &[&SigningKey]) -> Issuer {
    let keys = Arc::new(Mutex::new(
        initial.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>(),
    ));
    let fetches = Arc::new(AtomicUsize::new(0));
    let delay_ms = Arc::new(AtomicU64::new(0));
    let down = Arc::new(AtomicBool::new(false));
    let (k, f, d, o) = (
        keys.clone(),
        fetches.clone(),
        delay_ms.clone(),
        down.clone(),
    );
    let app = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            let (k, f, d, o) = (k.clone(), f.clone(), d.clone(), o.clone());
            async move {
                f.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(d.load(Ordering::SeqCst))).await;
                if o.load(Ordering::SeqCst) {
                    return Err(axum::http::StatusCode::SERVICE_UNAVAILABLE);
                }
                let keys = k.lock().unwrap().clone();
                Ok(axum::Json(json!({ "keys": keys })))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let jwks_uri = format!("http://{}/jwks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Issuer {
        keys,
        fetches,
        delay_ms,
        down,
        jwks_uri,
    }
}

fn verifier(issuer: &Issuer) -> OidcVerifier {
    OidcVerifier::new(vec![TrustedIssuer {
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
        jwks_uri: issuer.jwks_uri.clone(),
    }])
}

#[tokio::test]
async fn a_valid_token_yields_a_pseudonymous_identity() {
    let key = signing_key("k1");
    let idp = issuer(&[&key]).await;
    let identity = verifier(&idp)
        .verify(&token(&key, claims(json!({}))))
        .await
        .unwrap();
    assert!(identity.subject.starts_with("user:"));
    assert!(
        !identity.subject.contains("alice"),
        "no email in the identity"
    );
    assert_eq!(identity.groups, ["platform-admins"]);
    // Stable per person.
    let again = verifier(&idp)
        .verify(&token(&key, claims(json!({}))))
        .await
        .unwrap();
    assert_eq!(again.subject, identity.subject);
}

#[tokio::test]
async fn forged_expired_misaddressed_and_foreign_tokens_are_refused() {
    let key = signing_key("k1");
    let idp = issuer(&[&key]).await;
    let verifier = verifier(&idp);
    let now = jsonwebtoken::get_current_timestamp();

    let forger = SigningKey {
        kid: "k1".into(),
        ..signing_key("k1")
    };
    assert_eq!(
        verifier.verify(&token(&forger, claims(json!({})))).await,
        Err(TokenError::Signature)
    );
    assert_eq!(
        verifier
            .verify(&token(&key, claims(json!({"exp": now - 3600}))))
            .await,
        Err(TokenError::Expired)
    );
    // Within the tolerated clock skew.
    assert!(
        verifier
            .verify(&token(&key, claims(json!({"exp": now - 20}))))
            .await
            .is_ok()
    );
    assert_eq!(
        verifier
            .verify(&token(&key, claims(json!({"aud": "someone-else"}))))
            .await,
        Err(TokenError::Audience)
    );
    assert_eq!(
        verifier
            .verify(&token(&key, claims(json!({"iss": "https://evil.test"}))))
            .await,
        Err(TokenError::UnknownIssuer)
    );
    let hs256 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims(json!({})),
        &EncodingKey::from_secret(b"guessable"),
    )
    .unwrap();
    assert_eq!(verifier.verify(&hs256).await, Err(TokenError::Algorithm));
    assert_eq!(
        verifier.verify("not.a.jwt").await,
        Err(TokenError::Malformed)
    );
    let mut no_sub = claims(json!({}));
    no_sub.as_object_mut().unwrap().remove("sub");
    assert_eq!(
        verifier.verify(&token(&key, no_sub)).await,
        Err(TokenError::Claims)
    );
}

#[tokio::test]
async fn a_rotated_key_is_fetched_once_and_forged_kids_cannot_flood_the_idp() {
    let old = signing_key("old");
    let idp = issuer(&[&old]).await;
    let verifier = verifier(&idp).with_min_refetch_interval(Duration::from_millis(300));
    verifier
        .verify(&token(&old, claims(json!({}))))
        .await
        .unwrap();
    verifier
        .verify(&token(&old, claims(json!({}))))
        .await
        .unwrap();
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 1, "keys are cached");

    // The IdP rotates: the new kid is unknown to the cache, one refetch finds it.
    let new = signing_key("new");
    idp.keys.lock().unwrap().push(new.jwk.clone());
    tokio::time::sleep(Duration::from_millis(350)).await;
    verifier
        .verify(&token(&new, claims(json!({}))))
        .await
        .unwrap();
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 2);

    // A burst of made-up kids costs at most one fetch per interval.
    let before = idp.fetches.load(Ordering::SeqCst);
    for i in 0..20 {
        let made_up = SigningKey {
            kid: format!("forged-{i}"),
            ..signing_key("x")
        };
        assert_eq!(
            verifier.verify(&token(&made_up, claims(json!({})))).await,
            Err(TokenError::UnknownKey)
        );
    }
    assert!(idp.fetches.load(Ordering::SeqCst) - before <= 1);
}

#[tokio::test]
async fn tokens_not_valid_yet_or_issued_to_another_client_are_refused() {
    let key = signing_key("k1");
    let idp = issuer(&[&key]).await;
    let verifier = verifier(&idp);
    let now = jsonwebtoken::get_current_timestamp();
    assert_eq!(
        verifier
            .verify(&token(&key, claims(json!({"nbf": now + 3600}))))
            .await,
        Err(TokenError::NotYetValid)
    );
    // Within the tolerated clock skew, and in the past: valid.
    for nbf in [now + 20, now - 10] {
        assert!(
            verifier
                .verify(&token(&key, claims(json!({"nbf": nbf}))))
                .await
                .is_ok()
        );
    }
    // Issued to another client of the same IdP for Windlass's audience: refused.
    assert_eq!(
        verifier
            .verify(&token(&key, claims(json!({"azp": "some-other-client"}))))
            .await,
        Err(TokenError::AuthorizedParty)
    );
    assert!(
        verifier
            .verify(&token(&key, claims(json!({"azp": AUDIENCE}))))
            .await
            .is_ok()
    );
}

/// The bound this test holds a valid sign-in to while unknown kids flood the verifier and
/// the IdP takes seconds to answer: a cached key is never behind a fetch.
const VALID_LOGIN_BOUND: Duration = Duration::from_millis(250);

#[tokio::test]
async fn an_unknown_kid_flood_during_an_idp_outage_does_not_delay_a_valid_login() {
    let key = signing_key("k1");
    let idp = issuer(&[&key]).await;
    let verifier = Arc::new(verifier(&idp).with_min_refetch_interval(Duration::from_millis(50)));
    verifier
        .verify(&token(&key, claims(json!({}))))
        .await
        .unwrap();
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 1);

    // The IdP now takes 3 s to answer; once a refetch is allowed again, 200 tokens with
    // made-up kids arrive at once, and one of them starts a (slow) refetch.
    idp.delay_ms.store(3000, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(60)).await;
    let flood: Vec<_> = (0..200)
        .map(|i| {
            let verifier = verifier.clone();
            let forged = token(
                &SigningKey {
                    kid: format!("forged-{i}"),
                    ..signing_key("x")
                },
                claims(json!({})),
            );
            tokio::spawn(async move { verifier.verify(&forged).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let began = Instant::now();
    verifier
        .verify(&token(&key, claims(json!({}))))
        .await
        .unwrap();
    let took = began.elapsed();
    assert!(
        took < VALID_LOGIN_BOUND,
        "a valid login took {took:?} during the flood"
    );

    for refused in flood {
        assert_eq!(refused.await.unwrap(), Err(TokenError::UnknownKey));
    }
    assert_eq!(
        idp.fetches.load(Ordering::SeqCst),
        2,
        "one refetch for the whole flood"
    );
}

#[tokio::test]
async fn a_failed_fetch_is_remembered_and_not_retried_within_the_interval() {
    let key = signing_key("k1");
    let idp = issuer(&[&key]).await;
    idp.down.store(true, Ordering::SeqCst);
    let verifier = verifier(&idp).with_min_refetch_interval(Duration::from_millis(400));
    for _ in 0..10 {
        assert!(matches!(
            verifier.verify(&token(&key, claims(json!({})))).await,
            Err(TokenError::JwksUnavailable(_))
        ));
    }
    assert_eq!(
        idp.fetches.load(Ordering::SeqCst),
        1,
        "the failure is cached"
    );
    // Back up, and the interval over: the next sign-in fetches and succeeds.
    idp.down.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(450)).await;
    verifier
        .verify(&token(&key, claims(json!({}))))
        .await
        .unwrap();
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 2);
}
