//! Which hosts a worker fetches charts from. A shared worker runs next to Windlass's own
//! services, so a chart URL naming loopback, link-local (the clouds' metadata endpoints),
//! private or other non-public addresses would let a customer make it fetch from
//! Windlass's network: those are refused. The host is resolved and every address checked
//! (one bad address is enough to refuse: the fetch may use any of them).
//!
//! A placed worker runs in the customer's own network, where private repositories are
//! the point, and tests and `windlass dev` serve charts from loopback stand-ins: both use
//! [`ChartHosts::Any`] (`--chart-hosts-allow-private`).
//!
//! Left open: helm resolves the host again when it fetches, so a name whose answers change
//! between the two lookups (DNS rebinding) is not caught here.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::Chart;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ChartHosts {
    /// Public addresses only: shared workers.
    #[default]
    PublicOnly,
    /// Any address: placed workers (their own network), tests and `windlass dev`.
    Any,
}

#[derive(Debug, thiserror::Error)]
pub enum ChartHostError {
    #[error(
        "chart host {host} resolves to {address}, which is not a public address; shared workers fetch charts from public hosts only"
    )]
    NotPublic { host: String, address: IpAddr },
    #[error("chart location {0:?} names no host")]
    NoHost(String),
    #[error("could not resolve chart host {host}: {error}")]
    Unresolved { host: String, error: std::io::Error },
}

impl ChartHostError {
    /// Only a failed lookup may be worth retrying; a refusal stays a refusal.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unresolved { .. })
    }
}

/// Checks where `chart` would be fetched from. Local charts are not fetched.
pub async fn check(chart: &Chart, policy: ChartHosts) -> Result<(), ChartHostError> {
    let location = match chart {
        Chart::Local(_) => return Ok(()),
        Chart::Repository { url, .. } => url,
        Chart::Oci { reference, .. } => reference,
    };
    if policy == ChartHosts::Any {
        return Ok(());
    }
    let (host, port) =
        host_and_port(location).ok_or_else(|| ChartHostError::NoHost(location.clone()))?;
    let addresses: Vec<IpAddr> = match host.parse::<IpAddr>() {
        Ok(address) => vec![address],
        Err(_) => tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|error| ChartHostError::Unresolved {
                host: host.clone(),
                error,
            })?
            .map(|socket| socket.ip())
            .collect(),
    };
    match addresses.into_iter().find(|a| !is_public(*a)) {
        Some(address) => Err(ChartHostError::NotPublic { host, address }),
        None => Ok(()),
    }
}

/// `scheme://[user@]host[:port]/...` → (host without IPv6 brackets, port or the scheme's).
fn host_and_port(location: &str) -> Option<(String, u16)> {
    let (scheme, rest) = location.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let default_port = if scheme == "http" { 80 } else { 443 };
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(port) => port.parse().ok()?,
        None => default_port,
    };
    (!host.is_empty()).then(|| (host.to_ascii_lowercase(), port))
}

/// Whether an address is on the public internet (not loopback, private, link-local,
/// shared, multicast, documentation, reserved or unspecified).
pub fn is_public(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(a: Ipv4Addr) -> bool {
    let [o1, o2, o3, _] = a.octets();
    !(a.is_unspecified()
        || a.is_loopback()
        || a.is_private()
        || a.is_link_local() // 169.254/16: the clouds' metadata endpoints
        || a.is_broadcast()
        || a.is_multicast()
        || a.is_documentation()
        || o1 == 0
        || (o1 == 100 && (64..128).contains(&o2)) // 100.64/10 shared (Alibaba's metadata)
        || (o1 == 192 && o2 == 0 && o3 == 0) // 192.0.0/24 protocol assignments
        || (o1 == 198 && (18..20).contains(&o2)) // 198.18/15 benchmarking
        || o1 >= 240) // reserved
}

fn is_public_v6(a: Ipv6Addr) -> bool {
    if let Some(v4) = embedded_v4(a) {
        return is_public_v4(v4);
    }
    let first = a.segments()[0];
    !(a.is_unspecified()
        || a.is_loopback()
        || a.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local (fd00:ec2::254 is AWS's metadata)
        || (first & 0xffc0) == 0xfe80 // link-local
        || (first & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (first == 0x2001 && a.segments()[1] == 0x0db8)) // documentation
}

/// The IPv4 address inside an IPv4-mapped, -compatible or NAT64 (64:ff9b::/96) address.
fn embedded_v4(a: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = a.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    let mapped = s[..5] == [0; 5] && s[5] == 0xffff;
    let compatible = s[..6] == [0; 6] && !a.is_loopback() && !a.is_unspecified();
    let nat64 = s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4];
    (mapped || compatible || nat64).then_some(tail)
}

/// A refusal is final; a failed lookup is retried by fetching, which reports it.
impl crate::error::StepError for ChartHostError {
    fn verdict(&self) -> crate::error::Verdict {
        crate::error::Verdict::Terminal
    }

    fn failure_code(&self) -> crate::error::FailureCode {
        if self.is_retryable() {
            crate::error::FailureCode::ChartFetchFailed
        } else {
            crate::error::FailureCode::ChartHostRefused
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repository(url: &str) -> Chart {
        Chart::Repository {
            url: url.into(),
            name: "redis".into(),
            version: "1.0.0".into(),
        }
    }

    #[test]
    fn private_and_special_addresses_are_not_public() {
        for address in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.100.100.200",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "240.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00:ec2::254",
            "fc00::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "ff02::1",
            "2001:db8::1",
        ] {
            assert!(!is_public(address.parse().unwrap()), "{address}");
        }
        for address in [
            "93.184.215.14",
            "8.8.8.8",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(address.parse().unwrap()), "{address}");
        }
    }

    #[test]
    fn hosts_and_ports_are_read_from_repository_and_oci_locations() {
        assert_eq!(
            host_and_port("https://charts.example/x"),
            Some(("charts.example".into(), 443))
        );
        assert_eq!(
            host_and_port("http://Charts.example:8080"),
            Some(("charts.example".into(), 8080))
        );
        assert_eq!(
            host_and_port("oci://[::1]:5000/c/redis"),
            Some(("::1".into(), 5000))
        );
        assert_eq!(
            host_and_port("oci://u@10.0.0.1/c"),
            Some(("10.0.0.1".into(), 443))
        );
        assert_eq!(host_and_port("https:///x"), None);
        assert_eq!(host_and_port("https://h:notaport/x"), None);
    }

    #[tokio::test]
    async fn shared_workers_refuse_loopback_metadata_and_private_chart_hosts() {
        for url in [
            "https://localhost/charts",
            "https://127.0.0.1:8443/charts",
            "http://169.254.169.254/latest/meta-data",
            "https://10.0.0.5/charts",
            "https://[::ffff:127.0.0.1]/charts",
        ] {
            let refused = check(&repository(url), ChartHosts::PublicOnly)
                .await
                .unwrap_err();
            assert!(!refused.is_retryable(), "{url}: {refused}");
            assert!(
                refused.to_string().contains("not a public address"),
                "{url}: {refused}"
            );
        }
        let oci = Chart::Oci {
            reference: "oci://192.168.0.10:5000/charts/redis".into(),
            version: "1".into(),
        };
        assert!(check(&oci, ChartHosts::PublicOnly).await.is_err());
        assert!(
            check(
                &repository("https://93.184.215.14/charts"),
                ChartHosts::PublicOnly
            )
            .await
            .is_ok()
        );
        // A placed worker (or a test bed) may reach its own network.
        assert!(
            check(&repository("https://127.0.0.1/charts"), ChartHosts::Any)
                .await
                .is_ok()
        );
        assert!(check(&oci, ChartHosts::Any).await.is_ok());
        assert!(
            check(&Chart::Local("/charts/app".into()), ChartHosts::PublicOnly)
                .await
                .is_ok()
        );
    }
}
