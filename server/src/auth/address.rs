//! The client's address, as far as it can be trusted: the TCP peer, or, when the peer is one
//! of the configured reverse proxies (`trustedProxies`, `EPHYRA_TRUSTED_PROXIES`), the address
//! that proxy recorded in `X-Forwarded-For` (the right-most hop that is not itself a trusted
//! proxy) or `X-Real-IP`.
//!
//! Forwarded headers from any other peer are ignored: a client could otherwise rotate them to
//! escape its limits, or forge someone else's address to lock them out.

use std::net::IpAddr;

use http::HeaderMap;

/// One network in CIDR form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    base: u128,
    mask: u128,
    v4: bool,
}

/// IPv4 addresses as IPv4-mapped IPv6, so one comparison serves both.
fn bits(ip: IpAddr) -> (u128, bool) {
    match ip {
        IpAddr::V4(v4) => (u128::from(v4.to_ipv6_mapped()), true),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => (u128::from(v4.to_ipv6_mapped()), true),
            None => (u128::from(v6), false),
        },
    }
}

impl Network {
    /// Parses `10.42.0.0/16`, `fd00::/8` or a bare address (one host).
    pub fn parse(text: &str) -> Option<Network> {
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u32>().ok()?)),
            None => (text, None),
        };
        let ip: IpAddr = address.parse().ok()?;
        let (base, v4) = bits(ip);
        let max = if v4 { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return None;
        }
        // IPv4 prefixes count within the last 32 bits of the mapped form.
        let prefix = if v4 { prefix + 96 } else { prefix };
        let mask = if prefix == 0 {
            0
        } else {
            u128::MAX << (128 - prefix)
        };
        Some(Network {
            base: base & mask,
            mask,
            v4,
        })
    }

    /// True when `ip` is inside.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let (b, v4) = bits(ip);
        v4 == self.v4 && b & self.mask == self.base
    }
}

/// The configured proxy networks.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<Network>);

impl TrustedProxies {
    /// From the configuration's list (already validated there; anything unreadable is skipped).
    pub fn new<S: AsRef<str>>(networks: &[S]) -> Self {
        TrustedProxies(
            networks
                .iter()
                .filter_map(|n| Network::parse(n.as_ref()))
                .collect(),
        )
    }

    /// True when `ip` belongs to a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(ip))
    }

    /// The client's address for a request from `peer` with `headers`.
    pub fn client_address(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer?;
        if !self.contains(peer) {
            return Some(peer);
        }
        // Walk the chain from the nearest hop: every proxy appends the address it saw, so the
        // first one that is not a trusted proxy is the client (anything left of it is
        // whatever the client chose to send).
        let mut hops: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|hop| hop.trim().parse::<IpAddr>().ok())
            .collect::<Option<Vec<_>>>()
            .unwrap_or_default();
        hops.reverse();
        if let Some(client) = hops.iter().find(|ip| !self.contains(**ip)) {
            return Some(*client);
        }
        if let Some(real) = headers
            .get("x-real-ip")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<IpAddr>().ok())
        {
            return Some(real);
        }
        // Only proxies in the chain (or none): the left-most proxy is as close as we get.
        Some(hops.last().copied().unwrap_or(peer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn networks_contain_their_addresses_only() {
        let n = Network::parse("10.42.0.0/16").unwrap();
        assert!(n.contains("10.42.7.1".parse().unwrap()));
        assert!(n.contains("::ffff:10.42.7.1".parse().unwrap()));
        assert!(!n.contains("10.43.0.1".parse().unwrap()));
        let host = Network::parse("192.168.1.1").unwrap();
        assert!(host.contains("192.168.1.1".parse().unwrap()));
        assert!(!host.contains("192.168.1.2".parse().unwrap()));
        let v6 = Network::parse("fd00::/8").unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(!v6.contains("10.0.0.1".parse().unwrap()));
        assert!(
            Network::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert_eq!(Network::parse("10.0.0.0/33"), None);
        assert_eq!(Network::parse("proxy"), None);
    }

    #[test]
    fn forwarded_headers_count_only_from_a_trusted_proxy() {
        let none = TrustedProxies::default();
        let forged = headers(&[
            ("x-forwarded-for", "203.0.113.9"),
            ("x-real-ip", "203.0.113.9"),
        ]);
        assert_eq!(
            none.client_address(ip("198.51.100.1"), &forged),
            ip("198.51.100.1")
        );

        let proxies = TrustedProxies::new(&["10.0.0.0/8"]);
        assert_eq!(
            proxies.client_address(ip("198.51.100.1"), &forged),
            ip("198.51.100.1")
        );
        assert_eq!(
            proxies.client_address(ip("10.0.0.5"), &forged),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn the_client_is_the_nearest_hop_that_is_not_a_proxy() {
        let proxies = TrustedProxies::new(&["10.0.0.0/8"]);
        // The client put 192.0.2.66 in front; the edge proxy appended the real address; an
        // inner proxy appended the edge's.
        let h = headers(&[("x-forwarded-for", "192.0.2.66, 203.0.113.9, 10.1.1.1")]);
        assert_eq!(
            proxies.client_address(ip("10.0.0.5"), &h),
            ip("203.0.113.9")
        );
        let real = headers(&[("x-real-ip", "203.0.113.10")]);
        assert_eq!(
            proxies.client_address(ip("10.0.0.5"), &real),
            ip("203.0.113.10")
        );
        let garbage = headers(&[("x-forwarded-for", "203.0.113.9, not-an-ip")]);
        assert_eq!(
            proxies.client_address(ip("10.0.0.5"), &garbage),
            ip("10.0.0.5")
        );
        assert_eq!(proxies.client_address(None, &h), None);
    }
}
