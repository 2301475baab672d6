//! Issuers' signing keys, cached per (issuer, key URL), fetched without holding up anyone
//! who already has what they need.
//!
//! A token whose `kid` is cached is verified from the cache: it takes a map lookup under a
//! short synchronous lock, never waits for a fetch. A `kid` the cache does not know (the
//! IdP rotated, or someone made it up) may trigger a refetch, but at most one per issuer
//! per `min_refetch_interval`: misses wait for the fetch in flight (bounded by the HTTP
//! client's timeout) and then find the answer, or the negative cache (a recent attempt,
//! failed or not) answers at once. Keys past `max_key_age` are refreshed by one caller
//! while the others go on with them; a failed fetch keeps the keys fetched before it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::JwkSet;

use super::{TokenError, TrustedIssuer};

pub(crate) struct JwksCache {
    http: reqwest::Client,
    issuers: Mutex<HashMap<String, Arc<IssuerKeys>>>,
    /// Keys are refreshed after this even without a kid miss.
    pub(crate) max_key_age: Duration,
    /// At most one fetch per issuer within this window, whatever the misses.
    pub(crate) min_refetch_interval: Duration,
}

#[derive(Default)]
struct IssuerKeys {
    state: Mutex<KeyState>,
    /// Held by whoever fetches; only misses wait on it.
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct KeyState {
    keys: Option<Arc<JwkSet>>,
    fetched_at: Option<Instant>,
    attempted_at: Option<Instant>,
    /// Why the last attempt failed, if it did: answered without refetching.
    failure: Option<String>,
}

enum Lookup {
    Fresh(DecodingKey),
    /// The key is cached but the keys are older than `max_key_age`.
    Stale(DecodingKey),
    Missing,
}

impl JwksCache {
    pub(crate) fn new(fetch_timeout: Duration) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(fetch_timeout)
                .build()
                .unwrap_or_default(),
            issuers: Mutex::default(),
            max_key_age: Duration::from_secs(3600),
            min_refetch_interval: Duration::from_secs(30),
        }
    }

    pub(crate) async fn key(
        &self,
        issuer: &TrustedIssuer,
        kid: &str,
    ) -> Result<DecodingKey, TokenError> {
        let entry = self.entry(issuer);
        let _fetching = match self.cached(&entry, kid)? {
            Lookup::Fresh(key) => return Ok(key),
            // Due for a refresh: whoever gets the fetch does it; the others, and this one
            // if the refresh fails, go on with the keys they have.
            Lookup::Stale(key) => match entry.fetching.try_lock() {
                Ok(guard) => {
                    // Keys are held, so a failed refresh leaves them in use: not an error.
                    self.refresh(&entry, issuer).await.ok();
                    drop(guard);
                    return Ok(self.latest(&entry, kid).unwrap_or(key));
                }
                Err(_) => return Ok(key),
            },
            // A miss: wait for a fetch in flight, if any, and look again before fetching.
            Lookup::Missing => entry.fetching.lock().await,
        };
        if let Some(key) = self.latest(&entry, kid) {
            return Ok(key);
        }
        self.refresh(&entry, issuer).await?;
        self.latest(&entry, kid).ok_or(TokenError::UnknownKey)
    }

    /// Fetches the issuer's keys unless an attempt was made within the refetch interval
    /// (the negative cache). Called holding `fetching`, never the state lock: tokens with
    /// cached keys go on being verified meanwhile. `Err` only when there are no keys at
    /// all to go on with.
    async fn refresh(&self, entry: &IssuerKeys, issuer: &TrustedIssuer) -> Result<(), TokenError> {
        {
            let mut state = entry.state.lock().unwrap_or_else(|p| p.into_inner());
            let recently = state
                .attempted_at
                .is_some_and(|at| at.elapsed() < self.min_refetch_interval);
            if recently {
                return match &state.failure {
                    Some(why) if state.keys.is_none() => {
                        Err(TokenError::JwksUnavailable(why.clone()))
                    }
                    _ => Ok(()),
                };
            }
            state.attempted_at = Some(Instant::now());
        }
        let fetched = self.fetch(issuer).await;
        let mut state = entry.state.lock().unwrap_or_else(|p| p.into_inner());
        // The interval runs from the answer, not the question: the misses that waited for
        // a slow fetch find it recent and do not each fetch again.
        state.attempted_at = Some(Instant::now());
        match fetched {
            Ok(keys) => {
                state.keys = Some(Arc::new(keys));
                state.fetched_at = Some(Instant::now());
                state.failure = None;
                Ok(())
            }
            Err(why) => {
                tracing::warn!(issuer = %issuer.issuer, error = %why, "could not fetch the issuer's keys");
                state.failure = Some(why.clone());
                match state.keys {
                    Some(_) => Ok(()),
                    None => Err(TokenError::JwksUnavailable(why)),
                }
            }
        }
    }

    /// `kid` from the keys held now, fresh or not.
    fn latest(&self, entry: &IssuerKeys, kid: &str) -> Option<DecodingKey> {
        let state = entry.state.lock().unwrap_or_else(|p| p.into_inner());
        let jwk = state.keys.as_ref()?.find(kid)?;
        DecodingKey::from_jwk(jwk).ok()
    }

    /// Keyed by issuer and key URL: two organisations may name the same issuer with
    /// different key URLs, and one's keys must never verify the other's tokens.
    fn entry(&self, issuer: &TrustedIssuer) -> Arc<IssuerKeys> {
        let cache_key = format!("{}\n{}", issuer.issuer, issuer.jwks_uri);
        let mut issuers = self.issuers.lock().unwrap_or_else(|p| p.into_inner());
        issuers.entry(cache_key).or_default().clone()
    }

    /// The key from the cached keys, if they have it, and whether they are fresh.
    fn cached(&self, entry: &IssuerKeys, kid: &str) -> Result<Lookup, TokenError> {
        let state = entry.state.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = state
            .fetched_at
            .is_some_and(|at| at.elapsed() < self.max_key_age);
        let Some(jwk) = state.keys.as_ref().and_then(|keys| keys.find(kid)) else {
            return Ok(Lookup::Missing);
        };
        let key = DecodingKey::from_jwk(jwk).map_err(|_| TokenError::UnknownKey)?;
        Ok(if fresh {
            Lookup::Fresh(key)
        } else {
            Lookup::Stale(key)
        })
    }

    async fn fetch(&self, issuer: &TrustedIssuer) -> Result<JwkSet, String> {
        self.http
            .get(&issuer.jwks_uri)
            .send()
            .await
            .map_err(|e| e.to_string())?
            .error_for_status()
            .map_err(|e| e.to_string())?
            .json::<JwkSet>()
            .await
            .map_err(|e| e.to_string())
    }
}
