//! The address an audit entry names. Behind an ingress every request comes from the
//! proxy, so `X-Forwarded-For` is read, but only as far as it was written by proxies the
//! operator trusts: walking it from the right (the hop nearest to us), trusted proxies are
//! skipped and the first other address is the client. A client cannot forge its address by
//! sending the header itself, because its own entries sit left of the first untrusted hop.

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::HeaderMap;

/// Addresses and CIDR ranges of the proxies in front of the API
/// (`WINDLASS_TRUSTED_PROXIES`, e.g. `10.0.0.0/8,127.0.0.1`). Empty: trust none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<(IpAddr, u8)>);

impl TrustedProxies {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut ranges = Vec::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (address, bits) = match item.split_once('/') {
                Some((address, bits)) => (address, Some(bits)),
                None => (item, None),
            };
            let address: IpAddr = address
                .parse()
                .map_err(|_| format!("trusted proxy {item:?}: not an IP address or CIDR"))?;
            let max = if address.is_ipv4() { 32 } else { 128 };
            let bits = match bits {
                Some(bits) => bits
                    .parse::<u8>()
                    .ok()
                    .filter(|b| *b <= max)
                    .ok_or_else(|| format!("trusted proxy {item:?}: prefix must be 0 to {max}"))?,
                None => max,
            };
            ranges.push((address, bits));
        }
        Ok(Self(ranges))
    }

    fn trusts(&self, address: IpAddr) -> bool {
        self.0
            .iter()
            .any(|(range, bits)| in_range(address, *range, *bits))
    }

    /// The client's address: the peer, or (when the peer is a trusted proxy) the nearest
    /// untrusted hop of `X-Forwarded-For`.
    pub fn client(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let mut client = peer?;
        if !self.trusts(client) {
            return Some(client);
        }
        let hops: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|hop| hop.trim().parse::<IpAddr>())
            .collect::<Result<_, _>>()
            // A malformed chain tells nothing reliable: keep the proxy's own address.
            .unwrap_or_default();
        for hop in hops.into_iter().rev() {
            client = hop;
            if !self.trusts(hop) {
                break;
            }
        }
        Some(client)
    }
}

fn in_range(address: IpAddr, range: IpAddr, bits: u8) -> bool {
    match (address, range) {
        (IpAddr::V4(a), IpAddr::V4(r)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(a) & mask == u32::from(r) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(r)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(a) & mask == u128::from(r) & mask
        }
        _ => false,
    }
}

/// The client address of a request, set by the authentication middleware.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddress(pub Option<IpAddr>);

pub fn peer(extensions: &axum::http::Extensions) -> Option<IpAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", value.parse().unwrap());
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn only_hops_written_by_trusted_proxies_are_believed() {
        let proxies = TrustedProxies::parse("10.0.0.0/8, 127.0.0.1").unwrap();
        // Through the ingress: the client is the hop the ingress saw.
        assert_eq!(
            proxies.client(Some(ip("10.1.2.3")), &forwarded("203.0.113.7")),
            Some(ip("203.0.113.7"))
        );
        // A client forging the header: the ingress appends the real address on the right.
        assert_eq!(
            proxies.client(
                Some(ip("10.1.2.3")),
                &forwarded("198.51.100.1, 203.0.113.7, 10.9.9.9")
            ),
            Some(ip("203.0.113.7"))
        );
        // Not from a proxy: the header is ignored.
        assert_eq!(
            proxies.client(Some(ip("203.0.113.7")), &forwarded("1.2.3.4")),
            Some(ip("203.0.113.7"))
        );
        // Trusting nobody: the peer, always.
        assert_eq!(
            TrustedProxies::default().client(Some(ip("10.1.2.3")), &forwarded("1.2.3.4")),
            Some(ip("10.1.2.3"))
        );
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse("proxy.local").is_err());
    }
}
