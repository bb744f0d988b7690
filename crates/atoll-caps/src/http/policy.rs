//! Which network addresses a function may reach.
//!
//! Patterns decide which *names* are allowed; this decides which
//! *addresses*. Loopback, private, link-local, shared (CGNAT), multicast,
//! documentation and reserved addresses are refused unless the function's
//! allowlist names them exactly: the IP itself (`http://127.0.0.1:8080`) or
//! `localhost`. The check runs on the addresses a name resolves to, and the
//! connection goes to exactly those addresses, so a name that resolves to a
//! private address (DNS rebinding) is refused even when the name is allowed.
//!
//! [`is_public`] is an allowlist, not a list of exceptions: an IPv6 address
//! is public only inside global unicast space (`2000::/3`) and outside
//! every special range there, so an address space nobody listed is refused
//! rather than let through. IPv6 forms that carry an IPv4 address are judged
//! by that IPv4 address, since that is where the packets end up: IPv4-mapped
//! (`::ffff:a.b.c.d`), IPv4-translated (`::ffff:0:a.b.c.d`, RFC 2765),
//! IPv4-compatible (`::a.b.c.d`) and NAT64 (`64:ff9b::a.b.c.d`, RFC 6052).
//! Forms whose IPv4 address cannot be read reliably are refused outright:
//! local-use NAT64 (`64:ff9b:1::/48`, RFC 8215, where the operator picks
//! the layout), 6to4 (`2002::/16`) and Teredo (`2001::/32`), whose relays
//! may deliver to anything.

use atoll_manifest::{HostMatch, HostPattern};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

/// Whether `ip` is an ordinary public Internet address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

/// The IPv4 address an IPv6 address delivers to, for the forms where that
/// address sits in the last 32 bits.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let last = Ipv4Addr::from((u32::from(s[6]) << 16) | u32::from(s[7]));
    match s {
        // IPv4-compatible ::/96 (deprecated; `::` and `::1` land in 0.0.0.0/8).
        [0, 0, 0, 0, 0, 0, _, _] => Some(last),
        // IPv4-mapped ::ffff:0:0/96.
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(last),
        // IPv4-translated ::ffff:0:0:0/96.
        [0, 0, 0, 0, 0xffff, 0, _, _] => Some(last),
        // NAT64 well-known prefix 64:ff9b::/96.
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(last),
        _ => None,
    }
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    // Global unicast is 2000::/3; loopback, unspecified, unique-local
    // (fc00::/7), link-local (fe80::/10), site-local (fec0::/10), multicast
    // (ff00::/8), discard (100::/64), local-use NAT64 (64:ff9b:1::/48) and
    // whatever is not assigned yet all lie outside it.
    let global_unicast = (s[0] & 0xe000) == 0x2000;
    let special = match s[0] {
        // IETF protocol assignments 2001::/23 (Teredo, benchmarking,
        // ORCHID), and documentation 2001:db8::/32.
        0x2001 => s[1] < 0x0200 || s[1] == 0x0db8,
        0x2002 => true,          // 6to4
        0x3fff => s[1] < 0x1000, // documentation 3fff::/20 (RFC 9637)
        _ => false,
    };
    global_unicast && !special
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
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast (deprecated)
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

/// The resolver's refusal: `host` resolves to no address the function
/// may reach. A type of its own, so a failed request can tell it from a
/// network's failure.
#[derive(Debug)]
pub struct NonPublic(pub String);

impl std::fmt::Display for NonPublic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} resolves only to loopback, private or otherwise non-public addresses, which this function may not reach",
            self.0
        )
    }
}

impl std::error::Error for NonPublic {}

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
                return Err(Box::new(NonPublic(host)) as Box<dyn std::error::Error + Send + Sync>);
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
            "172.32.0.1",
            "100.128.0.1",
            "192.0.1.1",
            "198.20.0.1",
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
            "2001:200::1",
            // Embedded public IPv4 addresses are as public as the address.
            "::ffff:8.8.8.8",
            "::ffff:0:8.8.8.8",
            "::8.8.8.8",
            "64:ff9b::8.8.8.8",
        ] {
            assert!(is_public(ip(public)), "{public} is public");
        }
        for private in [
            // IPv4: this network, loopback, private, link-local, CGNAT, IETF,
            // documentation, benchmarking, 6to4 relay, multicast, reserved.
            "0.0.0.0",
            "0.1.2.3",
            "127.0.0.1",
            "127.255.255.254",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "192.0.0.1",
            "192.0.2.1",
            "198.51.100.1",
            "203.0.113.1",
            "198.18.0.1",
            "198.19.255.255",
            "192.88.99.1",
            "224.0.0.1",
            "239.255.255.255",
            "240.0.0.1",
            "255.255.255.255",
            // IPv6 of its own: loopback, unspecified, unique-local, link-local,
            // site-local, multicast, documentation, benchmarking, discard, ORCHID,
            // and space outside global unicast.
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "ff0e::1",
            "2001:db8::1",
            "3fff::1",
            "3fff:fff::1",
            "2001:2::1",
            "2001:10::1",
            "2001:20::1",
            "100::1",
            "4000::1",
            "1::1",
            // Embedding a non-public IPv4 address, in every form.
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:0.0.0.0",
            "::ffff:0:7f00:1",
            "::ffff:0:127.0.0.1",
            "::ffff:0:a9fe:a9fe",
            "::127.0.0.1",
            "::10.0.0.1",
            "::169.254.169.254",
            "64:ff9b::7f00:1",
            "64:ff9b::10.0.0.1",
            // Forms refused whatever they embed.
            "64:ff9b:1::8.8.8.8",
            "64:ff9b:1:ffff::1",
            "2002:7f00:1::",
            "2002:808:808::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        ] {
            assert!(!is_public(ip(private)), "{private} is not public");
        }
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
