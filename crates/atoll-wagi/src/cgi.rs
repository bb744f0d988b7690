//! The request as a CGI program sees it: arguments and environment
//! variables, as WAGI and Spin's `wagi` executor set them (RFC 3875 plus
//! WAGI's `X_` additions).
//!
//! The request reaches the runtime without the route it matched, so the
//! route is found again here among the routes that call the function (one
//! path can match only one route: the manifest refuses conflicting ones).
//! From it come `X_MATCHED_ROUTE`, `SCRIPT_NAME` (the part of the path before
//! a trailing `*wildcard`) and `PATH_INFO` (the wildcard's part), so that
//! `SCRIPT_NAME` + `PATH_INFO` is the path, as CGI defines them. Route
//! parameters are `X_PATH_MATCH_<NAME>`, as in Spin.

use atoll_caps::{Grants, RequestInfo, TriggerKind};
use atoll_manifest::{RoutePath, Segment};
use http::header::{CONTENT_TYPE, HOST};
use percent_encoding::percent_decode_str;

/// Header fields not passed as `HTTP_*`: credentials and connection
/// management, as RFC 3875 (4.1.18) advises and WAGI does.
const NOT_PASSED: &[&str] = &["authorization", "proxy-authorization", "connection"];

/// `argv`: the request's path (WAGI's "script name"), then each `&`-separated
/// item of the query string, undecoded, as WAGI passes them. A trigger with
/// no path (a schedule, a message) passes the function's name alone.
pub fn args(function: &str, request: &RequestInfo) -> Vec<String> {
    if request.trigger != TriggerKind::Http {
        return vec![function.to_string()];
    }
    let mut args = vec![request.uri.path().to_string()];
    if let Some(query) = request.uri.query() {
        args.extend(query.split('&').filter(|item| !item.is_empty()).map(str::to_string));
    }
    args
}

/// The CGI variables for one request. `stdin_len` is what the program will
/// read on stdin (the request body, or a pipeline's `input` entry);
/// `routes` are the routes whose pipelines call the function.
pub fn variables(
    function: &str,
    request: &RequestInfo,
    routes: &[RoutePath],
    stdin_len: usize,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = Vec::with_capacity(24 + request.headers.len());
    let mut set = |name: &str, value: String| env.push((name.to_string(), value));
    set("GATEWAY_INTERFACE", "CGI/1.1".into());
    set("SERVER_SOFTWARE", concat!("Atoll/", env!("CARGO_PKG_VERSION")).into());
    set("CONTENT_LENGTH", stdin_len.to_string());
    set("AUTH_TYPE", String::new());
    set("REMOTE_USER", String::new());
    let (trigger, source) = match &request.trigger {
        TriggerKind::Http => ("http", ""),
        TriggerKind::Schedule { name } => ("schedule", name.as_str()),
        TriggerKind::Message { topic } => ("message", topic.as_str()),
    };
    set("X_ATOLL_TRIGGER", trigger.into());
    set("X_ATOLL_SOURCE", source.into());
    if request.trigger != TriggerKind::Http {
        // No request line: the payload arrives on stdin like a POST body.
        set("REQUEST_METHOD", "POST".into());
        set("SCRIPT_NAME", format!("/{function}"));
        for name in [
            "PATH_INFO",
            "PATH_TRANSLATED",
            "X_RAW_PATH_INFO",
            "QUERY_STRING",
            "X_MATCHED_ROUTE",
            "X_FULL_URL",
            "CONTENT_TYPE",
        ] {
            set(name, String::new());
        }
        set("SERVER_NAME", "localhost".into());
        set("SERVER_PORT", "0".into());
        set("SERVER_PROTOCOL", "HTTP/1.1".into());
        return env;
    }

    let path = request.uri.path();
    let route = matched_route(routes, path);
    let (script, raw_info) = split_path(path, route);
    let info = percent_decode_str(raw_info).decode_utf8_lossy().into_owned();
    set("REQUEST_METHOD", request.method.to_string());
    set("SCRIPT_NAME", script.to_string());
    set("PATH_INFO", info.clone());
    set("PATH_TRANSLATED", info);
    set("X_RAW_PATH_INFO", raw_info.to_string());
    set("X_MATCHED_ROUTE", route.map(ToString::to_string).unwrap_or_default());
    set("QUERY_STRING", request.uri.query().unwrap_or_default().to_string());
    let content_type = request
        .headers
        .get(CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    set("CONTENT_TYPE", content_type.unwrap_or_default());

    // The Host header is authoritative, as in WAGI; HTTP/2 requests carry
    // the authority in the URI instead.
    let authority = request
        .headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| request.uri.authority().map(|a| a.to_string()))
        .unwrap_or_else(|| "localhost".to_string());
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => (h.to_string(), p.to_string()),
        _ => (authority.clone(), "80".to_string()),
    };
    set("SERVER_NAME", host);
    set("SERVER_PORT", port);
    // Requests arrive over HTTP/2 with an absolute URI, over HTTP/1.1 with
    // a path only: the runtime is not told the version otherwise.
    let protocol = if request.uri.scheme().is_some() {
        "HTTP/2.0"
    } else {
        "HTTP/1.1"
    };
    set("SERVER_PROTOCOL", protocol.into());
    let path_and_query = request.uri.path_and_query().map_or(path, |pq| pq.as_str());
    set("X_FULL_URL", format!("http://{authority}{path_and_query}"));

    for (name, value) in &request.params {
        set(&format!("X_PATH_MATCH_{}", env_name(name)), value.clone());
    }
    for name in request.headers.keys() {
        if NOT_PASSED.contains(&name.as_str()) {
            continue;
        }
        let values: Vec<_> = request
            .headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        set(&format!("HTTP_{}", env_name(name.as_str())), values.join(", "));
    }
    env
}

/// The variables a function may read, under their manifest names: only
/// with the `vars` grant, secret ones only where listed in `secrets`.
/// Variable names are lower-case, so they never shadow a CGI variable.
pub fn granted_variables(grants: &Grants) -> Vec<(String, String)> {
    grants
        .vars
        .readable()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

fn env_name(name: &str) -> String {
    name.chars()
        .map(|c| if c == '-' { '_' } else { c.to_ascii_uppercase() })
        .collect()
}

/// The route `path` matched, among `routes`.
fn matched_route<'r>(routes: &'r [RoutePath], path: &str) -> Option<&'r RoutePath> {
    let parts: Vec<&str> = match path.strip_prefix('/') {
        Some("") | None => Vec::new(),
        Some(rest) => rest.split('/').collect(),
    };
    routes.iter().find(|route| matches(route, &parts))
}

fn matches(route: &RoutePath, parts: &[&str]) -> bool {
    let mut i = 0;
    for seg in &route.segments {
        match seg {
            Segment::Wildcard(_) => return parts.len() > i && parts[i..].iter().any(|p| !p.is_empty()),
            Segment::Param(_) => {
                if parts.get(i).is_none_or(|p| p.is_empty()) {
                    return false;
                }
            }
            Segment::Literal(l) => match parts.get(i) {
                Some(p) if percent_decode_str(p).decode_utf8_lossy() == l.as_str() => {}
                _ => return false,
            },
        }
        i += 1;
    }
    i == parts.len()
}

/// `SCRIPT_NAME` and the raw `PATH_INFO`: the path before a trailing
/// wildcard, and the wildcard's part; the whole path and nothing otherwise.
fn split_path<'p>(path: &'p str, route: Option<&RoutePath>) -> (&'p str, &'p str) {
    let Some(route) = route else { return (path, "") };
    if !matches!(route.segments.last(), Some(Segment::Wildcard(_))) {
        return (path, "");
    }
    let before = route.segments.len() - 1;
    // Skip the leading '/' and `before` segments; the rest (with its '/') is PATH_INFO.
    let mut at = 0;
    for _ in 0..before {
        match path[at + 1..].find('/') {
            Some(next) => at += 1 + next,
            None => return (path, ""),
        }
    }
    (&path[..at], &path[at..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, uri: &str, params: &[(&str, &str)]) -> RequestInfo {
        let mut r = RequestInfo {
            method: method.parse().unwrap(),
            uri: uri.parse().unwrap(),
            params: params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..RequestInfo::default()
        };
        r.headers.insert(HOST, "example.com:8080".parse().unwrap());
        r.headers.insert("x-token", "abc".parse().unwrap());
        r.headers.append("accept", "text/html".parse().unwrap());
        r.headers.append("accept", "text/plain".parse().unwrap());
        r.headers.insert("authorization", "Bearer secret".parse().unwrap());
        r
    }

    fn get<'a>(env: &'a [(String, String)], name: &str) -> &'a str {
        env.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("{name} is not set"))
    }

    #[test]
    fn a_wildcard_route_splits_script_name_and_path_info() {
        let routes = vec![
            RoutePath::parse("/other").unwrap(),
            RoutePath::parse("/files/:user/*rest").unwrap(),
        ];
        let req = request(
            "POST",
            "/files/ann/a%20b/c.txt?x=1&y",
            &[("user", "ann"), ("rest", "a b/c.txt")],
        );
        let env = variables("f", &req, &routes, 5);
        assert_eq!(get(&env, "X_MATCHED_ROUTE"), "/files/:user/*rest");
        assert_eq!(get(&env, "SCRIPT_NAME"), "/files/ann");
        assert_eq!(get(&env, "PATH_INFO"), "/a b/c.txt");
        assert_eq!(get(&env, "X_RAW_PATH_INFO"), "/a%20b/c.txt");
        assert_eq!(get(&env, "QUERY_STRING"), "x=1&y");
        assert_eq!(get(&env, "REQUEST_METHOD"), "POST");
        assert_eq!(get(&env, "CONTENT_LENGTH"), "5");
        assert_eq!(get(&env, "SERVER_NAME"), "example.com");
        assert_eq!(get(&env, "SERVER_PORT"), "8080");
        assert_eq!(
            get(&env, "X_FULL_URL"),
            "http://example.com:8080/files/ann/a%20b/c.txt?x=1&y"
        );
        assert_eq!(get(&env, "X_PATH_MATCH_USER"), "ann");
        assert_eq!(get(&env, "HTTP_X_TOKEN"), "abc");
        assert_eq!(get(&env, "HTTP_ACCEPT"), "text/html, text/plain");
        assert!(!env.iter().any(|(n, _)| n == "HTTP_AUTHORIZATION"));
        assert_eq!(args("f", &req), ["/files/ann/a%20b/c.txt", "x=1", "y"]);
    }

    #[test]
    fn a_plain_route_is_all_script_name() {
        let routes = vec![RoutePath::parse("/hello/:name").unwrap()];
        let env = variables("f", &request("GET", "/hello/bob", &[("name", "bob")]), &routes, 0);
        assert_eq!(get(&env, "SCRIPT_NAME"), "/hello/bob");
        assert_eq!(get(&env, "PATH_INFO"), "");
        assert_eq!(get(&env, "X_MATCHED_ROUTE"), "/hello/:name");
        let root = vec![RoutePath::parse("/").unwrap()];
        let env = variables("f", &request("GET", "/", &[]), &root, 0);
        assert_eq!(get(&env, "X_MATCHED_ROUTE"), "/");
    }

    #[test]
    fn schedules_and_messages_get_fixed_values() {
        let req = RequestInfo {
            trigger: TriggerKind::Schedule { name: "nightly".into() },
            ..RequestInfo::default()
        };
        let env = variables("report", &req, &[], 0);
        assert_eq!(get(&env, "REQUEST_METHOD"), "POST");
        assert_eq!(get(&env, "X_ATOLL_TRIGGER"), "schedule");
        assert_eq!(get(&env, "X_ATOLL_SOURCE"), "nightly");
        assert_eq!(get(&env, "SCRIPT_NAME"), "/report");
        assert_eq!(args("report", &req), ["report"]);
    }
}
