//! Which network addresses a function may reach.
//!
//! Patterns decide which *names* are allowed; this decides which
//! *addresses*. Loopback, private, link-local, shared (CGNAT), multicast,
//! documentation and reserved addresses are refused unless the function's
//! allowlist names them exactly: the IP itself (`http://127.0.0.1:8080`) or
//! `localhost`. The check runs on the addresses a name resolves to, and the
//! connection goes to exactly those addresses, so a name that resolves to a
//! private address (DNS rebinding) is refused even when the name is allowed.

use atoll_manifest::{HostMatch, HostPattern};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

/// Whether `ip` is an ordinary public Internet address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated) fec0::/10
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x0064 && s[1] == 0xff9b) // NAT64 (embeds IPv4)
                || (s[0] == 0x2002) // 6to4 (embeds IPv4)
                || (s[0] == 0x2001 && s[1] == 0) // Teredo
                || v6.to_ipv4().is_some_and(|v4| !is_public_v4(v4))) // IPv4-compatible
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
}

/// The allowlist, as the network layer needs it.
#[derive(Debug, Clone)]
pub struct AddressPolicy {
    patterns: Arc<Vec<HostPattern>>,
}

impl AddressPolicy {
    pub fn new(patterns: Vec<HostPattern>) -> AddressPolicy {
        AddressPolicy {
            patterns: Arc::new(patterns),
        }
    }

    pub fn patterns(&self) -> &[HostPattern] {
        &self.patterns
    }

    /// Whether some pattern allows the origin (names only).
    pub fn allows_origin(&self, scheme: &str, host: &str, port: u16) -> bool {
        self.patterns.iter().any(|p| p.matches(scheme, host, port))
    }

    /// Whether the origin `scheme://host:port` may be at a non-public
    /// address: an entry must name this host exactly (no wildcard host) and
    /// match the whole origin, port included.
    pub fn allows_private_origin(&self, scheme: &str, host: &str, port: u16) -> bool {
        self.patterns
            .iter()
            .any(|p| p.is_explicit_host() && p.matches(scheme, host, port))
    }

    /// Whether a URL naming `ip` literally may be sent.
    pub fn allows_literal(&self, scheme: &str, ip: IpAddr, port: u16) -> bool {
        is_public(ip) || self.allows_private_origin(scheme, &ip.to_string(), port)
    }

    /// Whether `name` may resolve to non-public addresses at all: only
    /// `localhost` (and `*.localhost`) named exactly. The port was checked
    /// before the request was made ([`Self::allows_private_origin`]); the
    /// resolver only sees names.
    fn name_may_be_private(&self, name: &str) -> bool {
        is_localhost(name) && {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            self.patterns.iter().any(|p| p.host == HostMatch::Exact(name.clone()))
        }
    }
}

/// `localhost` and its subdomains, which resolve to loopback by convention.
pub fn is_localhost(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

/// Resolves names for one function's HTTP client and drops the addresses
/// it may not reach. reqwest connects only to what this returns.
pub struct PolicyResolver(pub AddressPolicy);

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| format!("cannot resolve {host}: {e}"))?
                .collect();
            let allowed: Vec<SocketAddr> = if policy.name_may_be_private(&host) {
                resolved
            } else {
                resolved.into_iter().filter(|a| is_public(a.ip())).collect()
            };
            if allowed.is_empty() {
                return Err(format!(
                    "{host} resolves only to loopback, private or otherwise non-public addresses, which this function may not reach"
                )
                .into());
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn classifies_addresses() {
        for public in [
            "8.8.8.8",
            "1.1.1.1",
            "140.82.112.3",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(ip(public)), "{public} is public");
        }
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "240.0.0.1",
            "198.18.0.1",
            "192.0.2.1",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::7f00:1",
            "2002:7f00:1::",
        ] {
            assert!(!is_public(ip(private)), "{private} is not public");
        }
        assert!(is_public(ip("172.32.0.1")));
        assert!(is_public(ip("100.128.0.1")));
    }

    #[test]
    fn private_addresses_need_an_exact_pattern() {
        let p = |list: &[&str]| AddressPolicy::new(list.iter().map(|s| HostPattern::parse(s).unwrap()).collect());
        let wildcard = p(&["http://*:*"]);
        assert!(!wildcard.allows_literal("http", ip("127.0.0.1"), 80));
        assert!(wildcard.allows_literal("http", ip("8.8.8.8"), 80));
        assert!(!wildcard.name_may_be_private("localhost"));

        let exact = p(&["http://127.0.0.1:8080", "http://localhost:*", "http://*:9000"]);
        assert!(exact.allows_literal("http", ip("127.0.0.1"), 8080));
        assert!(!exact.allows_literal("http", ip("127.0.0.2"), 8080));
        // The exact entry is for port 8080 only; the wildcard does not count.
        assert!(!exact.allows_literal("http", ip("127.0.0.1"), 9000));
        assert!(!exact.allows_literal("https", ip("127.0.0.1"), 8080));
        assert!(exact.allows_private_origin("http", "localhost", 1234));
        assert!(exact.name_may_be_private("localhost"));
        assert!(exact.name_may_be_private("LOCALHOST."));

        // A public name that resolves privately is never trusted, even named exactly.
        let named = p(&["https://internal.example.com"]);
        assert!(!named.name_may_be_private("internal.example.com"));
    }

    #[tokio::test]
    async fn the_resolver_drops_non_public_addresses() {
        let policy = AddressPolicy::new(vec![HostPattern::parse("http://*:*").unwrap()]);
        let err = PolicyResolver(policy)
            .resolve("localhost".parse().unwrap())
            .await
            .err()
            .unwrap();
        assert!(err.to_string().contains("resolves only to loopback"), "{err}");

        let policy = AddressPolicy::new(vec![HostPattern::parse("http://localhost:*").unwrap()]);
        let addrs: Vec<_> = PolicyResolver(policy)
            .resolve("localhost".parse().unwrap())
            .await
            .ok()
            .unwrap()
            .collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()) && !addrs.is_empty());
    }
}
