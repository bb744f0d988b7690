//! Outbound host patterns: `scheme://host[:port]`, with `*` wildcards.
//!
//! - scheme: `http`, `https` or `*`;
//! - host: an exact name, an IP address (`[::1]` for IPv6), `*.example.com`
//!   (any subdomain, not the apex) or `*` (any host);
//! - port: a number or `*`; omitted means the scheme's default port.
//!
//! A pattern names an origin, never a path.

use std::fmt;
use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMatch {
    Any,
    /// `*.example.com`: stored as `example.com`.
    Subdomains(String),
    Exact(String),
    Ip(IpAddr),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    /// `None` matches http and https.
    pub scheme: Option<String>,
    pub host: HostMatch,
    /// `None` matches any port; otherwise the exact port (the scheme's
    /// default when the pattern gave none).
    pub port: Option<u16>,
    text: String,
}

impl HostPattern {
    pub fn parse(text: &str) -> Result<HostPattern, String> {
        let (scheme, rest) = text.split_once("://").ok_or_else(|| {
            format!("\"{text}\" needs a scheme: write \"https://{text}\" (or http://, or *:// for both)")
        })?;
        let scheme = match scheme {
            "http" | "https" => Some(scheme.to_string()),
            "*" => None,
            other => {
                return Err(format!(
                    "\"{text}\": unsupported scheme \"{other}\" (use http, https or *)"
                ));
            }
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty() {
            return Err(format!("\"{text}\" has no host"));
        }
        if authority.contains(['/', '?', '#', '@']) {
            return Err(format!(
                "\"{text}\": an allowed host is an origin (scheme://host[:port]), without path, query or user"
            ));
        }
        let (host, port) = split_port(authority).map_err(|e| format!("\"{text}\": {e}"))?;
        let host_match = if host == "*" {
            HostMatch::Any
        } else if let Some(suffix) = host.strip_prefix("*.") {
            check_name(suffix).map_err(|e| format!("\"{text}\": {e}"))?;
            HostMatch::Subdomains(suffix.to_ascii_lowercase())
        } else if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            HostMatch::Ip(
                v6.parse::<IpAddr>()
                    .map_err(|_| format!("\"{text}\": \"{v6}\" is not an IPv6 address"))?,
            )
        } else if let Ok(ip) = host.parse::<IpAddr>() {
            HostMatch::Ip(ip)
        } else {
            if host.contains('*') {
                return Err(format!(
                    "\"{text}\": a wildcard must be the whole host (*) or its first label (*.example.com)"
                ));
            }
            check_name(host).map_err(|e| format!("\"{text}\": {e}"))?;
            HostMatch::Exact(host.to_ascii_lowercase())
        };
        let port = match port {
            Some("*") => None,
            Some(p) => Some(
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| format!("\"{text}\": \"{p}\" is not a port number"))?,
            ),
            None => match scheme.as_deref() {
                Some("http") => Some(80),
                Some("https") => Some(443),
                _ => None,
            },
        };
        Ok(HostPattern {
            scheme,
            host: host_match,
            port,
            text: text.to_string(),
        })
    }

    /// Whether a request to `scheme://host:port` is allowed. `host` is the
    /// URL's host as written (lower-case name, or IP address).
    pub fn matches(&self, scheme: &str, host: &str, port: u16) -> bool {
        if self.scheme.as_deref().is_some_and(|s| s != scheme) {
            return false;
        }
        if self.port.is_some_and(|p| p != port) {
            return false;
        }
        let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        match &self.host {
            HostMatch::Any => true,
            HostMatch::Subdomains(suffix) => {
                host.len() > suffix.len() + 1
                    && host.ends_with(suffix.as_str())
                    && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
            }
            HostMatch::Exact(name) => *name == host,
            HostMatch::Ip(ip) => host.parse::<IpAddr>().is_ok_and(|h| h == *ip),
        }
    }

    /// Whether this pattern names its host exactly (no wildcard), which is
    /// what it takes to reach a loopback or private address.
    pub fn is_explicit_host(&self) -> bool {
        matches!(self.host, HostMatch::Exact(_) | HostMatch::Ip(_))
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn split_port(authority: &str) -> Result<(&str, Option<&str>), String> {
    if authority.starts_with('[') {
        let end = authority.find(']').ok_or("unclosed \"[\" in an IPv6 address")?;
        let rest = &authority[end + 1..];
        return match rest.strip_prefix(':') {
            Some(port) => Ok((&authority[..=end], Some(port))),
            None if rest.is_empty() => Ok((authority, None)),
            None => Err("unexpected text after the IPv6 address".into()),
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Ok((host, Some(port))),
        None => Ok((authority, None)),
    }
}

fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!("\"{name}\" is not a valid host name"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> HostPattern {
        HostPattern::parse(s).unwrap()
    }

    #[test]
    fn exact_hosts_and_default_ports() {
        let gh = p("https://api.github.com");
        assert!(gh.matches("https", "api.github.com", 443));
        assert!(gh.matches("https", "API.GitHub.com", 443));
        assert!(!gh.matches("http", "api.github.com", 80));
        assert!(!gh.matches("https", "api.github.com", 8443));
        assert!(!gh.matches("https", "github.com", 443));
        assert!(!gh.matches("https", "api.github.com.evil.com", 443));
        assert!(gh.is_explicit_host());
        assert!(p("http://example.com/").matches("http", "example.com", 80));
    }

    #[test]
    fn wildcards() {
        let sub = p("https://*.example.com:8443");
        assert!(sub.matches("https", "a.example.com", 8443));
        assert!(sub.matches("https", "a.b.example.com", 8443));
        assert!(!sub.matches("https", "example.com", 8443));
        assert!(!sub.matches("https", "badexample.com", 8443));
        assert!(!sub.matches("https", "a.example.com", 443));
        assert!(!sub.is_explicit_host());

        let any = p("*://*:*");
        assert!(any.matches("http", "anything.org", 1234));
        assert!(any.matches("https", "10.0.0.1", 443));
        assert!(!any.is_explicit_host());

        let any_port = p("http://localhost:*");
        assert!(any_port.matches("http", "localhost", 3000));
        assert!(any_port.is_explicit_host());
    }

    #[test]
    fn ip_addresses() {
        let v4 = p("http://127.0.0.1:8080");
        assert!(v4.matches("http", "127.0.0.1", 8080));
        assert!(!v4.matches("http", "127.0.0.2", 8080));
        let v6 = p("http://[::1]:8080");
        assert!(v6.matches("http", "[::1]", 8080));
        assert!(v6.matches("http", "::1", 8080));
    }

    #[test]
    fn malformed_patterns_say_why() {
        assert!(
            HostPattern::parse("api.github.com")
                .unwrap_err()
                .contains("needs a scheme")
        );
        assert!(
            HostPattern::parse("ftp://x.com")
                .unwrap_err()
                .contains("unsupported scheme")
        );
        assert!(
            HostPattern::parse("https://x.com/path")
                .unwrap_err()
                .contains("without path")
        );
        assert!(HostPattern::parse("https://a.*.com").unwrap_err().contains("wildcard"));
        assert!(HostPattern::parse("https://x.com:99999").unwrap_err().contains("port"));
        assert!(
            HostPattern::parse("https://exa mple.com")
                .unwrap_err()
                .contains("not a valid host")
        );
        assert!(HostPattern::parse("https://").unwrap_err().contains("no host"));
        assert!(HostPattern::parse("https://[::1").unwrap_err().contains("unclosed"));
    }
}
