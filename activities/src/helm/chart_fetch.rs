//! Telling a chart that cannot be fetched apart from a cluster that cannot be reached.
//!
//! helm fetches a remote chart before it talks to the cluster, and reports a repository
//! that is down with the same words as a cluster that is down ("no such host",
//! "connection refused"). Classified as the cluster, a mistyped registry was retried for
//! a quarter of an hour as "could not reach the cluster". Here, a failure whose message
//! names the chart's repository or registry (and is not helm's "Kubernetes cluster
//! unreachable") becomes [`HelmError::ChartFetch`], which names the chart and where it
//! was looked for.

use super::{Chart, HelmError};

/// What helm says when a fetch fails: the lookup, the connection, or the answer.
const FETCH_FAILURES: &[&str] = &[
    "no such host",
    "connection refused",
    "i/o timeout",
    "server misbehaving",
    "is not a valid chart repository or cannot be reached",
    "failed to fetch",
    "failed to do request",
    "not found",
    "401",
    "403",
    "404",
    "unauthorized",
    "forbidden",
    "denied",
    "x509:",
    "tls:",
];

/// `error` as a [`HelmError::ChartFetch`] if it is about fetching `chart`.
pub(crate) fn classify(chart: &Chart, error: HelmError) -> HelmError {
    let (name, registry, host) = match chart {
        Chart::Local(_) => return error,
        Chart::Repository { url, name, version } => {
            (format!("{name} {version}"), url.clone(), authority(url))
        }
        Chart::Oci { reference, version } => (
            format!("{reference} {version}"),
            registry_of(reference),
            authority(reference),
        ),
    };
    let message = match &error {
        HelmError::Unreachable { message, .. }
        | HelmError::InvalidChart { message, .. }
        | HelmError::Failed { message, .. } => message.clone(),
        _ => return error,
    };
    let lower = message.to_ascii_lowercase();
    let about_the_chart = !host.is_empty() && lower.contains(&host.to_ascii_lowercase());
    if about_the_chart
        && !lower.contains("kubernetes cluster unreachable")
        && FETCH_FAILURES.iter().any(|f| lower.contains(f))
    {
        return HelmError::ChartFetch {
            chart: name,
            registry,
            message,
        };
    }
    error
}

/// `host[:port]` of a URL or OCI reference.
fn authority(location: &str) -> String {
    let rest = location
        .split_once("://")
        .map_or(location, |(_, rest)| rest);
    rest.split(['/', '?', '#'])
        .next()
        .unwrap_or_default()
        .rsplit('@')
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// `oci://registry.example` for `oci://registry.example/charts/redis`.
fn registry_of(reference: &str) -> String {
    format!("oci://{}", authority(reference))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> Chart {
        Chart::Repository {
            url: "http://127.0.0.1:1/charts".into(),
            name: "redis".into(),
            version: "19.0.0".into(),
        }
    }

    #[test]
    fn an_unreachable_repository_is_a_chart_fetch_failure_naming_both() {
        let helm = HelmError::from_failure(
            "upgrade",
            "cache",
            1,
            "Error: looks like \"http://127.0.0.1:1/charts\" is not a valid chart repository or cannot be reached: \
             Get \"http://127.0.0.1:1/charts/index.yaml\": dial tcp 127.0.0.1:1: connect: connection refused\n",
        );
        assert!(matches!(helm, HelmError::Unreachable { .. }));
        let e = classify(&repo(), helm);
        assert!(!e.is_retryable());
        let text = e.to_string();
        assert!(
            text.starts_with(
                "chart redis 19.0.0 could not be fetched from http://127.0.0.1:1/charts:"
            ),
            "{text}"
        );
    }

    #[test]
    fn an_oci_registry_that_does_not_resolve_is_named_too() {
        let chart = Chart::Oci {
            reference: "oci://registry.invalid/charts/redis".into(),
            version: "1.0.0".into(),
        };
        let helm = HelmError::from_failure(
            "upgrade",
            "cache",
            1,
            "Error: failed to do request: Head \"https://registry.invalid/v2/charts/redis/manifests/1.0.0\": \
             dial tcp: lookup registry.invalid: no such host\n",
        );
        let e = classify(&chart, helm);
        assert!(
            matches!(&e, HelmError::ChartFetch { registry, .. } if registry == "oci://registry.invalid"),
            "{e:?}"
        );
    }

    #[test]
    fn an_unreachable_cluster_stays_a_cluster_problem() {
        let helm = HelmError::from_failure(
            "upgrade",
            "cache",
            1,
            "Error: Kubernetes cluster unreachable: Get \"https://127.0.0.1:6443/version\": dial tcp 127.0.0.1:6443: connect: connection refused\n",
        );
        assert!(matches!(
            classify(&repo(), helm),
            HelmError::Unreachable { .. }
        ));
    }
}
