//! Which chart references a service may name: nothing helm could read as a flag, nothing
//! but a DNS-label chart name, and repositories over `https://` or `oci://` only, unless
//! the organisation allows plain HTTP (`Organization::allow_plain_http_charts`).
//!
//! Helm also gets `--` before positional arguments (activities' `helm::args`), and shared
//! workers refuse chart hosts in private ranges (activities' `chart_hosts`): three layers,
//! because each alone has been enough to get something past the others elsewhere.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Where a service's chart comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "from", rename_all = "snake_case", deny_unknown_fields)]
pub enum ChartSource {
    /// `name` from the HTTP(S) chart repository at `url`.
    Repository {
        url: String,
        name: String,
        version: String,
    },
    /// `oci://registry/path/chart`.
    Oci { reference: String, version: String },
}

const MAX_REFERENCE_CHARS: usize = 512;
const MAX_VERSION_CHARS: usize = 64;

/// What an organisation allows beyond the defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChartPolicy {
    pub allow_plain_http: bool,
}

/// The organisation's policy over a service's chart: plain `http://` only with its consent.
/// (`validate` already checked the form, with either scheme.)
pub fn check_policy(service: &str, source: &ChartSource, policy: ChartPolicy) -> Result<()> {
    match source {
        ChartSource::Repository { url, .. }
            if url.starts_with("http://") && !policy.allow_plain_http =>
        {
            Err(Error::InvalidInput(format!(
                "service {service}: plain http:// chart repositories are refused unless the organisation allows them (allow_plain_http_charts)"
            )))
        }
        _ => Ok(()),
    }
}

/// Checks the form of a service's chart reference: a precise reason on refusal.
pub fn validate(service: &str, source: &ChartSource) -> Result<()> {
    let refuse = |why: String| Err(Error::InvalidInput(format!("service {service}: {why}")));
    let version = match source {
        ChartSource::Repository { url, name, version } => {
            if !is_dns_label(name) {
                return refuse(format!(
                    "chart name {:?} must be a DNS label (1 to 63 lowercase letters, digits or '-', starting and ending with a letter or digit)",
                    clip(name)
                ));
            }
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return refuse("a chart repository is an https:// URL".into());
            }
            check_url(url).or_else(&refuse)?;
            version
        }
        ChartSource::Oci { reference, version } => {
            if !reference.starts_with("oci://") {
                return refuse("an OCI chart is an oci:// reference".into());
            }
            check_url(reference).or_else(&refuse)?;
            let path = reference["oci://".len()..].split_once('/').map(|(_, p)| p);
            let segments_ok = path.is_some_and(|p| {
                p.split('/').all(|segment| {
                    !segment.is_empty()
                        && !segment.starts_with(['-', '.', '_'])
                        && segment.bytes().all(|b| {
                            b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b)
                        })
                })
            });
            if !segments_ok {
                return refuse(
                    "an OCI reference is oci://<registry>/<path>/<chart>, lowercase path segments not starting with '-'".into(),
                );
            }
            version
        }
    };
    if version.is_empty() {
        return refuse("pin the chart to a version".into());
    }
    if version.len() > MAX_VERSION_CHARS
        || version.starts_with('-')
        || !version
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".+-_".contains(&b))
    {
        return refuse(format!(
            "chart version {:?} must be up to {MAX_VERSION_CHARS} letters, digits, '.', '+', '-' or '_', not starting with '-'",
            clip(version)
        ));
    }
    Ok(())
}

/// `[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?`
pub fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    (1..=63).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

/// A URL with a host, no credentials, no whitespace, nothing helm could take for a flag.
fn check_url(text: &str) -> std::result::Result<(), String> {
    if text.len() > MAX_REFERENCE_CHARS || !text.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "a chart location is up to {MAX_REFERENCE_CHARS} visible ASCII characters"
        ));
    }
    let url = url::Url::parse(text).map_err(|e| format!("the chart location is not a URL: {e}"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("a chart location carries no credentials".into());
    }
    match url.host_str() {
        Some(host) if !host.is_empty() && !host.starts_with('-') => Ok(()),
        _ => Err("a chart location names a host".into()),
    }
}

fn clip(text: &str) -> String {
    text.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repository(url: &str, name: &str) -> ChartSource {
        ChartSource::Repository {
            url: url.into(),
            name: name.into(),
            version: "1.2.3".into(),
        }
    }

    fn oci(reference: &str, version: &str) -> ChartSource {
        ChartSource::Oci {
            reference: reference.into(),
            version: version.into(),
        }
    }

    #[test]
    fn flags_and_odd_names_are_refused() {
        let ok = |s: &ChartSource| validate("cache", s);
        assert!(ok(&repository("https://charts.example", "redis")).is_ok());
        assert!(ok(&oci("oci://registry.example/charts/redis", "20.1.0")).is_ok());
        for name in [
            "--post-renderer=/bin/sh",
            "-x",
            "Redis",
            "redis-",
            "",
            "a/b",
            "a b",
        ] {
            let error = ok(&repository("https://charts.example", name)).unwrap_err();
            assert!(error.to_string().contains("DNS label"), "{name}: {error}");
        }
        assert!(ok(&repository("https://charts.example", &"a".repeat(64))).is_err());
        for reference in [
            "oci://registry.example/--post-renderer=/bin/sh",
            "oci://registry.example",
            "oci://registry.example/charts//redis",
            "oci://user:pass@registry.example/charts/redis",
            "oci://-registry/charts/redis",
            "oci://registry.example/charts/redis --post-renderer=x",
        ] {
            assert!(ok(&oci(reference, "1")).is_err(), "{reference}");
        }
        for version in ["", "--post-renderer=/bin/sh", "-1", "1 2", &"1".repeat(65)] {
            assert!(
                ok(&oci("oci://r.example/c/redis", version)).is_err(),
                "{version:?}"
            );
        }
        assert!(ok(&repository("https://user:secret@charts.example", "redis")).is_err());
        assert!(ok(&repository("ftp://charts.example", "redis")).is_err());
    }

    #[test]
    fn plain_http_needs_the_organisations_consent() {
        let plain = repository("http://charts.internal", "redis");
        assert!(validate("cache", &plain).is_ok(), "well formed");
        let error = check_policy("cache", &plain, ChartPolicy::default()).unwrap_err();
        assert!(
            error.to_string().contains("allow_plain_http_charts"),
            "{error}"
        );
        let allowing = ChartPolicy {
            allow_plain_http: true,
        };
        assert!(check_policy("cache", &plain, allowing).is_ok());
        let secure = repository("https://charts.example", "redis");
        assert!(check_policy("cache", &secure, ChartPolicy::default()).is_ok());
    }
}
