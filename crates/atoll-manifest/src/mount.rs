//! Where an app is mounted in a server that hosts several: `[app] base`
//! (a path prefix) and `[app] hosts` (the names it answers), how a request
//! picks an app, and which two mounts cannot be told apart.
//!
//! A request goes to the app whose hosts match its host (an exact name
//! before a `*.name`, a longer `*.name` before a shorter, any of them
//! before an app with no hosts) and, among those, whose base is the
//! longest prefix of its path. Two mounts conflict only when no rule can
//! choose between them: the same base and a host (or no host) in common.

/// An app's mount, from its manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// `/` or `/a/b`, without a trailing `/`.
    pub base: String,
    /// Lower-case names or `*.name`; empty: any host.
    pub hosts: Vec<String>,
}

impl Mount {
    pub fn new(base: &str, hosts: &[String]) -> Mount {
        Mount {
            base: base.to_string(),
            hosts: hosts.to_vec(),
        }
    }

    /// How well this mount's hosts match `host` (lower case, no port): a
    /// larger value is a closer match; `None` if they do not.
    pub fn host_rank(&self, host: &str) -> Option<(u8, usize)> {
        if self.hosts.is_empty() {
            return Some((0, 0));
        }
        self.hosts
            .iter()
            .filter_map(|h| match h.strip_prefix("*.") {
                Some(suffix) => (host.len() > suffix.len() + 1
                    && host.ends_with(suffix)
                    && host.as_bytes()[host.len() - suffix.len() - 1] == b'.')
                    .then_some((1, suffix.len())),
                None => (h == host).then_some((2, 0)),
            })
            .max()
    }

    /// `path` with the base taken off (`/shop/a` → `/a`, `/shop` → `/`),
    /// or `None` when the path is not under the base.
    pub fn strip<'a>(&self, path: &'a str) -> Option<&'a str> {
        if self.base == "/" {
            return Some(path);
        }
        let rest = path.strip_prefix(self.base.as_str())?;
        match rest {
            "" => Some("/"),
            r if r.starts_with('/') => Some(r),
            _ => None,
        }
    }

    /// What this mount and `other` both claim, if no rule can choose
    /// between them: `base /shop on any host`, `base / on host a.example`.
    pub fn conflict(&self, other: &Mount) -> Option<String> {
        if self.base != other.base {
            return None;
        }
        if self.hosts.is_empty() && other.hosts.is_empty() {
            return Some(format!("base {} on any host", self.base));
        }
        self.hosts
            .iter()
            .find(|h| other.hosts.contains(h))
            .map(|h| format!("base {} on host {h}", self.base))
    }
}

impl std::fmt::Display for Mount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.hosts.is_empty() {
            write!(f, "{} (any host)", self.base)
        } else {
            write!(f, "{} on {}", self.base, self.hosts.join(", "))
        }
    }
}

/// The host of a `Host` header or `:authority`, as mounts compare it:
/// without the port or a final `.`, in lower case.
pub fn host_of(authority: &str) -> String {
    let host = match authority.strip_prefix('[') {
        // `[::1]:8080`: the brackets stay, as an IPv6 host is written.
        Some(rest) => rest
            .split_once(']')
            .map_or(authority, |(h, _)| &authority[..h.len() + 2]),
        None => authority.split_once(':').map_or(authority, |(h, _)| h),
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// `[app] base`: `/`, or `/`-separated segments of letters, digits and
/// `-._~`, outside Atoll's own `/-/`. A trailing `/` is dropped.
pub(crate) fn check_base(text: &str) -> Result<String, String> {
    let Some(rest) = text.strip_prefix('/') else {
        return Err(format!("\"{text}\" must start with \"/\" (for example \"/shop\")"));
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() {
        return Ok("/".into());
    }
    if text.len() > 256 {
        return Err(format!("\"{text}\" is longer than 256 bytes"));
    }
    for segment in rest.split('/') {
        if segment.is_empty() {
            return Err(format!("\"{text}\" has an empty segment (\"//\")"));
        }
        if segment == "." || segment == ".." {
            return Err(format!("\"{text}\" has a \"{segment}\" segment"));
        }
        if let Some(c) = segment
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "-._~".contains(*c)))
        {
            return Err(format!(
                "\"{text}\": '{c}' is not allowed in a base (letters, digits, - . _ ~ and /; no parameters)"
            ));
        }
    }
    if rest == "-" || rest.starts_with("-/") {
        return Err(format!(
            "\"{text}\" is under /-/, which Atoll keeps for its own endpoints"
        ));
    }
    Ok(format!("/{rest}"))
}

/// One of `[app] hosts`: a host name (or address), or `*.name` for any of
/// its subdomains; no scheme, port or path. Lower-cased.
pub(crate) fn check_host(text: &str) -> Result<String, String> {
    let host = text.to_ascii_lowercase();
    if host.contains("://") || host.contains('/') {
        return Err(format!(
            "\"{text}\" is a host name (shop.example.com), without scheme or path"
        ));
    }
    if host.contains(':') {
        return Err(format!(
            "\"{text}\": a host is matched without its port; drop \":{}\"",
            host.rsplit(':').next().unwrap_or_default()
        ));
    }
    let name = host.strip_prefix("*.").unwrap_or(&host);
    let labels_ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
        });
    if !labels_ok {
        return Err(format!(
            "\"{text}\" is not a host name (labels of letters, digits and -, separated by dots; \"*.\" first for any subdomain)"
        ));
    }
    Ok(host)
}

impl crate::AppInfo {
    /// Where the app asks to be mounted.
    pub fn mount(&self) -> Mount {
        Mount::new(&self.base, &self.hosts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bases_are_checked_and_normalised() {
        assert_eq!(check_base("/").unwrap(), "/");
        assert_eq!(check_base("/shop/").unwrap(), "/shop");
        assert_eq!(check_base("/a/b-c.d").unwrap(), "/a/b-c.d");
        for bad in [
            "shop", "/a//b", "/-", "/-/x", "/a/:id", "/a/..", "/a b", "/a%2Fb", "/a?b",
        ] {
            assert!(check_base(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hosts_are_checked() {
        assert_eq!(check_host("Shop.Example.COM").unwrap(), "shop.example.com");
        assert_eq!(check_host("*.shop.example").unwrap(), "*.shop.example");
        for bad in ["", "a:80", "http://a", "a/b", "*", "a.*.b", "-a.b", "a..b"] {
            assert!(check_host(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn paths_are_stripped_at_segment_boundaries() {
        let m = Mount::new("/shop", &[]);
        assert_eq!(m.strip("/shop"), Some("/"));
        assert_eq!(m.strip("/shop/a/b"), Some("/a/b"));
        assert_eq!(m.strip("/shopping"), None);
        assert_eq!(m.strip("/"), None);
        assert_eq!(Mount::new("/", &[]).strip("/x"), Some("/x"));
    }

    #[test]
    fn closer_hosts_rank_higher() {
        let m = Mount::new("/", &["a.example".into(), "*.example".into(), "*.b.example".into()]);
        assert_eq!(m.host_rank("a.example"), Some((2, 0)));
        assert!(m.host_rank("x.b.example") > m.host_rank("x.example"));
        assert_eq!(m.host_rank("example"), None);
        assert_eq!(m.host_rank("xexample"), None);
        assert!(Mount::new("/", &[]).host_rank("anything") < m.host_rank("x.example"));
    }

    #[test]
    fn only_indistinguishable_mounts_conflict() {
        let any = Mount::new("/", &[]);
        let shop = Mount::new("/shop", &[]);
        let host = Mount::new("/", &["a.example".into()]);
        assert_eq!(any.conflict(&any.clone()).unwrap(), "base / on any host");
        assert!(any.conflict(&shop).is_none());
        assert!(any.conflict(&host).is_none());
        assert_eq!(host.conflict(&host.clone()).unwrap(), "base / on host a.example");
        assert!(host.conflict(&Mount::new("/", &["*.example".into()])).is_none());
    }

    #[test]
    fn hosts_are_compared_without_port_or_case() {
        assert_eq!(host_of("Shop.Example:8080"), "shop.example");
        assert_eq!(host_of("shop.example."), "shop.example");
        assert_eq!(host_of("[::1]:3000"), "[::1]");
        assert_eq!(host_of("127.0.0.1"), "127.0.0.1");
    }
}
