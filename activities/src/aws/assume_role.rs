//! Short-lived credentials for a customer's AWS account, by STS AssumeRole.
//!
//! The customer creates a role that trusts Windlass's AWS principal and requires
//! `sts:ExternalId` to equal [`external_id`] of their organisation. Without that
//! condition, any other Windlass organisation that learnt the role ARN could ask Windlass
//! to act on it (the confused-deputy problem); with it, Windlass only ever presents the
//! ExternalId of the organisation whose run is asking, so the role is usable for that
//! organisation alone.
//!
//! Credentials are cached per (role ARN, organisation) and used until shortly before they
//! expire, so a burst of activities costs one AssumeRole, not one each.
//!
//! The SDK logs raw HTTP responses at `trace` level (`aws_smithy_runtime`), which for
//! AssumeRole contain the secret key and session token: never enable that level in
//! production.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::meta::region::RegionProviderChain;
use aws_sdk_sts::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use chrono::{DateTime, Utc};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::bounded_cache::BoundedCache;

/// What STS issues unless configured otherwise: its minimum, so a leaked set is useful for
/// as short a time as STS allows.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(900);

/// Cached credentials are replaced once less than this remains, so an activity handed them
/// still has minutes to finish its calls before they expire under it.
pub const DEFAULT_REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// STS needs a region to build its endpoint even though the role ARN (IAM) is global.
const FALLBACK_REGION: &str = "us-east-1";

/// The ExternalId Windlass presents when assuming a role for `organization_id`: see
/// [`windlass_core::cloud_accounts::aws_external_id`] (stable forever, not a secret).
pub fn external_id(organization_id: Uuid) -> String {
    windlass_core::cloud_accounts::aws_external_id(organization_id)
}

/// The session name CloudTrail records in the customer's account, so they can tell which
/// organisation's work a call was. 9 + 36 characters, within STS's 64 and its character set.
fn role_session_name(organization_id: Uuid) -> String {
    format!("windlass-{}", organization_id.hyphenated())
}

/// Checks `arn:aws:iam::<12-digit account>:role/[<path>/]<name>` before anything is sent,
/// so a typo in a customer's configuration fails at once and terminally rather than as an
/// STS validation error after retries.
pub fn validate_role_arn(role_arn: &str) -> Result<(), AwsError> {
    let invalid = || AwsError::InvalidRoleArn {
        role_arn: role_arn.to_owned(),
    };
    let rest = role_arn.strip_prefix("arn:aws:iam::").ok_or_else(invalid)?;
    let (account, resource) = rest.split_once(':').ok_or_else(invalid)?;
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let path_and_name = resource.strip_prefix("role/").ok_or_else(invalid)?;
    // IAM: a path is `/`-separated, the name is the last segment (1-64 characters); both
    // use `[A-Za-z0-9+=,.@_-]`.
    let name = path_and_name.rsplit('/').next().unwrap_or_default();
    let allowed = |c: char| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c);
    if name.is_empty()
        || name.len() > 64
        || path_and_name.len() > 512
        || path_and_name.split('/').any(|segment| segment.is_empty())
        || !path_and_name.chars().all(|c| c == '/' || allowed(c))
    {
        return Err(invalid());
    }
    Ok(())
}

/// A set of temporary credentials. `Debug` shows the access key id (it identifies the
/// session in CloudTrail and is not secret) and hides the secret key and session token.
#[derive(Clone)]
pub struct AssumedCredentials {
    pub access_key_id: String,
    pub secret_access_key: Zeroizing<String>,
    pub session_token: Zeroizing<String>,
    pub expires_at: DateTime<Utc>,
}

impl fmt::Debug for AssumedCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AssumedCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("session_token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl AssumedCredentials {
    fn fresh_for(&self, margin: Duration, now: DateTime<Utc>) -> bool {
        // A margin too large for chrono is longer than any credential lives.
        chrono::Duration::from_std(margin)
            .ok()
            .and_then(|margin| now.checked_add_signed(margin))
            .is_some_and(|deadline| self.expires_at > deadline)
    }
}

/// Errors carry role ARNs, STS error codes and messages (which name principals and ARNs),
/// never credentials: the SDK's texts for AssumeRole do not echo the response body.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error("invalid role ARN {role_arn:?}: expected arn:aws:iam::<12-digit account>:role/<name>")]
    InvalidRoleArn { role_arn: String },

    /// The role does not exist, does not trust Windlass, or requires another ExternalId.
    #[error("STS refused to let Windlass assume {role_arn} ({code}): {message}")]
    AccessDenied {
        role_arn: String,
        code: String,
        message: String,
    },

    /// STS understood the request and will never accept it as it is (validation,
    /// malformed or oversized policy, region disabled for STS, worker credentials not
    /// recognised).
    #[error("STS rejected AssumeRole of {role_arn} ({code}): {message}")]
    Rejected {
        role_arn: String,
        code: String,
        message: String,
    },

    #[error("STS throttled AssumeRole ({code}): {message}")]
    Throttled { code: String, message: String },

    /// A server-side failure, or the worker's own session token expired (the SDK fetches
    /// a new one on the next attempt).
    #[error("STS failed AssumeRole (HTTP {status}, {code}): {message}")]
    Unavailable {
        status: u16,
        code: String,
        message: String,
    },

    /// Connection, timeout, or the worker's own credential chain could not answer.
    #[error("STS could not be reached: {message}")]
    Transport { message: String },

    #[error("STS answered without {missing}")]
    IncompleteResponse { missing: &'static str },

    /// The caller's credentials may not do this to the bucket (its policy, the role's
    /// policy, or a bucket name owned by another account).
    #[error("S3 denied {operation} on {resource} ({code}): {message}")]
    S3AccessDenied {
        operation: &'static str,
        resource: String,
        code: String,
        message: String,
    },

    /// S3 will never accept the request as it is (invalid bucket name, a bucket name
    /// taken by another account, a malformed request).
    #[error("S3 rejected {operation} on {resource} ({code}): {message}")]
    S3Rejected {
        operation: &'static str,
        resource: String,
        code: String,
        message: String,
    },

    #[error("S3 throttled {operation} on {resource} ({code}): {message}")]
    S3Throttled {
        operation: &'static str,
        resource: String,
        code: String,
        message: String,
    },

    /// A server-side failure or a transient conflict (a concurrent operation on the bucket,
    /// an expired session token the SDK replaces on the next attempt).
    #[error("S3 failed {operation} on {resource} (HTTP {status}, {code}): {message}")]
    S3Unavailable {
        operation: &'static str,
        resource: String,
        status: u16,
        code: String,
        message: String,
    },

    /// Connection, timeout, an unreadable response, or the credential chain failing.
    #[error("S3 could not be reached for {operation} on {resource}: {message}")]
    S3Transport {
        operation: &'static str,
        resource: String,
        message: String,
    },
}

impl AwsError {
    /// Whether trying again later can succeed without anyone changing configuration.
    pub fn is_retryable(&self) -> bool {
        match self {
            AwsError::Throttled { .. }
            | AwsError::Unavailable { .. }
            | AwsError::Transport { .. }
            | AwsError::IncompleteResponse { .. }
            | AwsError::S3Throttled { .. }
            | AwsError::S3Unavailable { .. }
            | AwsError::S3Transport { .. } => true,
            AwsError::InvalidRoleArn { .. }
            | AwsError::AccessDenied { .. }
            | AwsError::Rejected { .. }
            | AwsError::S3AccessDenied { .. }
            | AwsError::S3Rejected { .. } => false,
        }
    }

    pub(crate) fn from_sdk<E>(role_arn: &str, error: SdkError<E>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        match &error {
            SdkError::ServiceError(service) => {
                let status = service.raw().status().as_u16();
                let e = service.err();
                let code = e.code().unwrap_or("unknown error").to_owned();
                let message = e.message().unwrap_or_default().to_owned();
                // STS's query protocol reports throttling as 400 "Throttling", so the code
                // decides before the status does.
                match code.as_str() {
                    "Throttling"
                    | "ThrottlingException"
                    | "RequestLimitExceeded"
                    | "TooManyRequestsException" => AwsError::Throttled { code, message },
                    "ExpiredToken"
                    | "ExpiredTokenException"
                    | "RequestExpired"
                    | "IDPCommunicationError" => AwsError::Unavailable {
                        status,
                        code,
                        message,
                    },
                    "AccessDenied" | "AccessDeniedException" => AwsError::AccessDenied {
                        role_arn: role_arn.to_owned(),
                        code,
                        message,
                    },
                    _ if status == 429 => AwsError::Throttled { code, message },
                    _ if status >= 500 => AwsError::Unavailable {
                        status,
                        code,
                        message,
                    },
                    _ if status == 403 => AwsError::AccessDenied {
                        role_arn: role_arn.to_owned(),
                        code,
                        message,
                    },
                    _ => AwsError::Rejected {
                        role_arn: role_arn.to_owned(),
                        code,
                        message,
                    },
                }
            }
            // The request could not even be built (a parameter out of range): sending it
            // again builds the same request.
            SdkError::ConstructionFailure(_) => AwsError::Rejected {
                role_arn: role_arn.to_owned(),
                code: "InvalidRequest".to_owned(),
                message: DisplayErrorContext(&error).to_string(),
            },
            // Timeouts, connection failures and the worker's own credential chain failing
            // (the SDK resolves identity just before sending, so that is a dispatch
            // failure), and a response that arrived but could not be read: a proxy or a
            // truncated body is as likely as anything permanent.
            _ => AwsError::Transport {
                message: DisplayErrorContext(&error).to_string(),
            },
        }
    }
}

type Slot = Arc<tokio::sync::Mutex<Option<AssumedCredentials>>>;

/// How many (role, organisation) pairs keep their cached credentials.
const ROLE_SLOTS: usize = 1024;

/// Assumes customers' roles on behalf of organisations and caches the results.
pub struct AssumedRoleProvider {
    client: aws_sdk_sts::Client,
    duration: Duration,
    refresh_margin: Duration,
    // One async lock per (role, organisation): concurrent callers for the same key wait
    // for a single AssumeRole instead of each sending one, while other keys proceed.
    // Bounded: a worker serving thousands of organisations over a month keeps the slots of
    // those it serves now; a slot unused for a credential's lifetime holds nothing useful.
    slots: Mutex<BoundedCache<(String, Uuid), Slot>>,
}

impl fmt::Debug for AssumedRoleProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AssumedRoleProvider")
            .field("duration", &self.duration)
            .field("refresh_margin", &self.refresh_margin)
            .finish_non_exhaustive()
    }
}

/// Windlass's OWN AWS credentials when its AWS is a local stand-in (moto, behind the STS
/// trust-policy stand-in): static, and nothing (region, profile, credentials) is read from
/// the machine's AWS configuration, environment or instance metadata. Never used against
/// AWS: production takes its credentials from the standard chain.
#[derive(Clone, Debug)]
pub struct StandInCredentials(aws_sdk_sts::config::Credentials);

impl StandInCredentials {
    /// The static credentials moto accepts (it checks none).
    pub fn moto() -> Self {
        Self(aws_sdk_sts::config::Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "windlass-standin",
        ))
    }
}

impl AssumedRoleProvider {
    /// Windlass's own credentials and region come from the standard AWS chain
    /// (environment, profile, web identity, instance metadata), unless `standin_credentials`
    /// are given (local stand-ins only: then nothing is read from the machine and the
    /// region is us-east-1). `endpoint_url` overrides the STS endpoint, for a local
    /// stand-in such as moto.
    pub async fn new(
        endpoint_url: Option<String>,
        standin_credentials: Option<StandInCredentials>,
    ) -> Self {
        let client = match standin_credentials {
            Some(StandInCredentials(credentials)) => {
                // Built directly rather than loaded: the loader would read the profile
                // files and environment for settings other than credentials.
                let mut config = aws_sdk_sts::Config::builder()
                    .behavior_version(BehaviorVersion::latest())
                    .region(aws_sdk_sts::config::Region::new(FALLBACK_REGION))
                    .credentials_provider(credentials);
                if let Some(url) = endpoint_url {
                    config = config.endpoint_url(url);
                }
                aws_sdk_sts::Client::from_conf(config.build())
            }
            None => {
                let region = RegionProviderChain::default_provider().or_else(FALLBACK_REGION);
                let mut loader = aws_config::defaults(BehaviorVersion::latest()).region(region);
                if let Some(url) = endpoint_url {
                    loader = loader.endpoint_url(url);
                }
                aws_sdk_sts::Client::new(&loader.load().await)
            }
        };
        Self {
            client,
            duration: DEFAULT_DURATION,
            refresh_margin: DEFAULT_REFRESH_MARGIN,
            slots: Mutex::new(BoundedCache::new(ROLE_SLOTS, DEFAULT_DURATION)),
        }
    }

    /// How long each session lasts. STS accepts 900 s up to the role's maximum session
    /// duration (at most 12 h) and refuses anything else as a validation error.
    pub fn with_duration(mut self, duration: Duration) -> Self {
        self.duration = duration;
        self.slots = Mutex::new(BoundedCache::new(ROLE_SLOTS, duration));
        self
    }

    /// How long before expiry cached credentials are replaced. A margin at least as long
    /// as the duration disables the cache.
    pub fn with_refresh_margin(mut self, margin: Duration) -> Self {
        self.refresh_margin = margin;
        self
    }

    /// Credentials for `role_arn` as `organization_id`, cached until less than the refresh
    /// margin remains on them.
    pub async fn credentials(
        &self,
        organization_id: Uuid,
        role_arn: &str,
    ) -> Result<AssumedCredentials, AwsError> {
        validate_role_arn(role_arn)?;
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            let key = (role_arn.to_owned(), organization_id);
            let now = std::time::Instant::now();
            match slots.get(&key, now) {
                Some(slot) => slot,
                None => {
                    let slot = Slot::default();
                    slots.insert(key, slot.clone(), now);
                    slot
                }
            }
        };
        let mut cached = slot.lock().await;
        if let Some(credentials) = cached.as_ref()
            && credentials.fresh_for(self.refresh_margin, Utc::now())
        {
            return Ok(credentials.clone());
        }
        let credentials = self.assume(organization_id, role_arn).await?;
        *cached = Some(credentials.clone());
        Ok(credentials)
    }

    /// A new AssumeRole, bypassing (and not filling) the cache: what proves that the
    /// role accepts this organisation *now*, rather than credentials obtained earlier.
    pub async fn assume_fresh(
        &self,
        organization_id: Uuid,
        role_arn: &str,
    ) -> Result<AssumedCredentials, AwsError> {
        validate_role_arn(role_arn)?;
        self.assume(organization_id, role_arn).await
    }

    /// This provider's STS configuration (region, endpoint), for a client on assumed
    /// credentials that must reach the same STS.
    pub fn sts_config(&self) -> &aws_sdk_sts::Config {
        self.client.config()
    }

    async fn assume(
        &self,
        organization_id: Uuid,
        role_arn: &str,
    ) -> Result<AssumedCredentials, AwsError> {
        let seconds = i32::try_from(self.duration.as_secs()).unwrap_or(i32::MAX);
        let output = self
            .client
            .assume_role()
            .role_arn(role_arn)
            .role_session_name(role_session_name(organization_id))
            .external_id(external_id(organization_id))
            .duration_seconds(seconds)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(role_arn, e))?;
        let credentials = output.credentials.ok_or(AwsError::IncompleteResponse {
            missing: "credentials",
        })?;
        let expiration = credentials.expiration;
        let expires_at = DateTime::from_timestamp(expiration.secs(), expiration.subsec_nanos())
            .ok_or(AwsError::IncompleteResponse {
                missing: "a valid expiration",
            })?;
        Ok(AssumedCredentials {
            access_key_id: credentials.access_key_id,
            secret_access_key: Zeroizing::new(credentials.secret_access_key),
            session_token: Zeroizing::new(credentials.session_token),
            expires_at,
        })
    }
}

impl crate::error::StepError for AwsError {
    fn verdict(&self) -> crate::error::Verdict {
        crate::error::Verdict::retry_if(self.is_retryable())
    }

    fn failure_code(&self) -> crate::error::FailureCode {
        if self.is_retryable() {
            crate::error::FailureCode::AwsUnavailable
        } else {
            crate::error::FailureCode::AwsRefused
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_arns_are_checked_before_sts_sees_them() {
        for good in [
            "arn:aws:iam::123456789012:role/windlass",
            "arn:aws:iam::123456789012:role/service-role/windlass+deploy=a,b.c@d_e-f",
        ] {
            assert!(validate_role_arn(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "windlass",
            "arn:aws:iam::12345678901:role/windlass",
            "arn:aws:iam::1234567890123:role/windlass",
            "arn:aws:iam::12345678901a:role/windlass",
            "arn:aws:iam::123456789012:user/windlass",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:iam::123456789012:role/path//windlass",
            "arn:aws:iam::123456789012:role/windlass/",
            "arn:aws:iam::123456789012:role/wind lass",
            "arn:aws:sts::123456789012:role/windlass",
            "arn:aws:iam:us-east-1:123456789012:role/windlass",
        ] {
            let error = validate_role_arn(bad).unwrap_err();
            assert!(!error.is_retryable(), "{bad}");
        }
        let long = format!("arn:aws:iam::123456789012:role/{}", "a".repeat(65));
        assert!(validate_role_arn(&long).is_err());
    }

    #[test]
    fn session_names_fit_sts_limits() {
        let name = role_session_name(Uuid::new_v4());
        assert!((2..=64).contains(&name.len()));
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c))
        );
    }

    #[test]
    fn external_ids_are_stable_and_per_organization() {
        let org = Uuid::parse_str("0f9e8d7c-6b5a-4c3d-2e1f-0a9b8c7d6e5f").unwrap();
        assert_eq!(
            external_id(org),
            "windlass-0f9e8d7c-6b5a-4c3d-2e1f-0a9b8c7d6e5f"
        );
        assert_ne!(external_id(org), external_id(Uuid::new_v4()));
    }
}
