//! Outbound HTTP, variables and secrets, static files, and every denial
//! path, through a real guest.

mod support;

use serde_json::json;
use support::{Upstream, load, logged};

fn manifest(allowed: &str, extra: &str) -> String {
    format!(
        r#"
[app]
name = "caps-test"

[variables]
greeting = {{ default = "hello" }}
region = {{ }}
api_token = {{ secret = true }}
db_password = {{ secret = true }}

[functions.caller]
source = "{{caps}}"
capabilities = ["http"]
allowed_hosts = [{allowed}]

[functions.reader]
source = "{{caps}}"
capabilities = ["vars", "files"]
secrets = ["db_password"]

[functions.nothing]
source = "{{caps}}"
{extra}"#
    )
}

const RUNTIME: &str = r#"
[variables]
api_token = "tok-3f9a1c-SUPERSECRET"
db_password = "pw-77-SUPERSECRET"
"#;

async fn fetch(app: &support::TestApp, cmd: serde_json::Value) -> Result<serde_json::Value, String> {
    app.json("caller", "fetch", cmd).await
}

#[tokio::test]
async fn allowed_hosts_are_reached_and_others_refused() {
    let up = Upstream::start().await;
    let allowed = format!("\"{}\"", up.origin());
    let app = load(&manifest(&allowed, ""), Some(RUNTIME), &[]).await.unwrap();

    let r = fetch(&app, json!({"url": up.url("/hello")})).await.unwrap();
    assert_eq!(r["status"], 200);
    assert_eq!(r["body"], "hi");
    let r = fetch(
        &app,
        json!({"url": up.url("/x"), "method": "POST", "body": "data", "headers": [["x-mine", "1"]]}),
    )
    .await
    .unwrap();
    assert_eq!(r["status"], 200);
    let last = up.received().pop().unwrap();
    assert_eq!(last.method, "POST");
    assert!(last.headers.iter().any(|(n, v)| n == "x-mine" && v == "1"));

    let err = fetch(&app, json!({"url": "https://example.com/"})).await.unwrap_err();
    assert!(
        err.contains("https://example.com is not in the function's allowed_hosts"),
        "{err}"
    );
    let err = fetch(
        &app,
        json!({"url": format!("http://127.0.0.1:{}/hello", up.addr.port() + 1)}),
    )
    .await
    .unwrap_err();
    assert!(err.contains("not in the function's allowed_hosts"), "{err}");
    let err = fetch(&app, json!({"url": "file:///etc/passwd"})).await.unwrap_err();
    assert!(err.contains("unsupported scheme"), "{err}");
}

/// Loopback and private addresses need an exact entry, whether written as
/// an IP or reached through a name (no DNS rebinding through a wildcard).
#[tokio::test]
async fn private_addresses_are_refused_unless_named_exactly() {
    let up = Upstream::start().await;
    let port = up.addr.port();
    let app = load(&manifest("\"http://*:*\"", ""), None, &[]).await.unwrap();
    let err = fetch(&app, json!({"url": up.url("/hello")})).await.unwrap_err();
    assert!(
        err.contains("127.0.0.1 is a loopback, private or otherwise non-public address"),
        "{err}"
    );
    let err = fetch(&app, json!({"url": format!("http://localhost:{port}/hello")}))
        .await
        .unwrap_err();
    assert!(err.contains("localhost resolves only to loopback"), "{err}");
    for url in [
        "http://10.0.0.1/",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/",
        "http://0.0.0.0/",
    ] {
        let err = fetch(&app, json!({"url": url})).await.unwrap_err();
        assert!(err.contains("non-public address"), "{url}: {err}");
    }
    assert!(up.received().is_empty(), "nothing may reach the upstream");

    let named = load(&manifest(&format!("\"http://localhost:{port}\""), ""), None, &[])
        .await
        .unwrap();
    let r = fetch(&named, json!({"url": format!("http://localhost:{port}/hello")}))
        .await
        .unwrap();
    assert_eq!(r["body"], "hi");
}

#[tokio::test]
async fn redirects_are_checked_at_every_hop() {
    let (a, b) = (Upstream::start().await, Upstream::start().await);
    let allowed = format!("\"{}\", \"http://*:{}\"", a.origin(), b.addr.port());
    let app = load(&manifest(&allowed, ""), None, &[]).await.unwrap();

    // Within the allowed origin: followed.
    let r = fetch(
        &app,
        json!({"url": a.url(&format!("/redirect?to={}", a.url("/hello")))}),
    )
    .await
    .unwrap();
    assert_eq!(r["body"], "hi");

    // To a host that is not allowed: refused before anything is sent to it.
    let other = Upstream::start().await;
    let err = fetch(
        &app,
        json!({"url": a.url(&format!("/redirect?to={}", other.url("/hello")))}),
    )
    .await
    .unwrap_err();
    assert!(
        err.contains(&format!(
            "redirected to {} is not in the function's allowed_hosts",
            other.origin()
        )),
        "{err}"
    );
    assert!(other.received().is_empty());

    // To an origin allowed only by a wildcard, at a loopback address: refused.
    let err = fetch(
        &app,
        json!({"url": a.url(&format!("/redirect?to={}", b.url("/hello")))}),
    )
    .await
    .unwrap_err();
    assert!(err.contains("non-public address"), "{err}");
    assert!(b.received().is_empty());

    // 303 turns a POST into a GET without its body.
    let r = fetch(
        &app,
        json!({"url": a.url(&format!("/see-other?to={}", a.url("/after"))), "method": "POST", "body": "x"}),
    )
    .await
    .unwrap();
    assert_eq!(r["status"], 200);
    let after = a.received().into_iter().find(|r| r.path == "/after").unwrap();
    assert_eq!(after.method, "GET");
}

/// A credential declared in the manifest is added by the host for its
/// hosts only; the function cannot read it, override it, or leak it through
/// a redirect; and it never appears in the logs.
#[tokio::test]
async fn injected_credentials_stay_out_of_the_guests_reach_and_the_logs() {
    let (api, elsewhere) = (Upstream::start().await, Upstream::start().await);
    let allowed = format!("\"{}\", \"{}\"", api.origin(), elsewhere.origin());
    let auth = format!(
        "\n[[http_auth]]\nhosts = [\"{}\"]\nheaders = {{ Authorization = \"Bearer {{{{ secret.api_token }}}}\" }}\n",
        api.origin()
    );
    let app = load(&(manifest(&allowed, "") + &auth), Some(RUNTIME), &[])
        .await
        .unwrap();

    let r = fetch(
        &app,
        json!({"url": api.url("/record"), "headers": [["authorization", "Bearer forged"]]}),
    )
    .await
    .unwrap();
    assert_eq!(r["body"], "ok");
    let got = api.received().pop().unwrap();
    let auths: Vec<_> = got.headers.iter().filter(|(n, _)| n == "authorization").collect();
    assert_eq!(auths.len(), 1, "{auths:?}");
    assert_eq!(
        auths[0].1, "Bearer tok-3f9a1c-SUPERSECRET",
        "the host's value wins over the guest's"
    );
    assert!(
        !r.to_string().contains("SUPERSECRET"),
        "the response shows no secret: {r}"
    );

    // Not sent to other hosts, including through a redirect from the API.
    fetch(&app, json!({"url": elsewhere.url("/record")})).await.unwrap();
    fetch(
        &app,
        json!({"url": api.url(&format!("/redirect?to={}", elsewhere.url("/hop")))}),
    )
    .await
    .unwrap();
    for req in elsewhere.received() {
        assert!(
            !req.headers.iter().any(|(n, _)| n == "authorization"),
            "leaked to {}: {req:?}",
            req.path
        );
    }

    // The guest cannot read the secret as a variable (no "vars", not listed).
    let err = app.call("caller", "var", "api_token").await.unwrap_err().message();
    assert!(err.contains("capability \"vars\" is not granted"), "{err}");
    let err = app.call("reader", "var", "api_token").await.unwrap_err().message();
    assert!(
        err.contains("\"api_token\" is secret; list it in the `secrets`"),
        "{err}"
    );

    assert!(!logged().contains("SUPERSECRET"), "a secret reached the logs");
    assert!(
        logged().contains("outbound request"),
        "the outbound requests were logged (without secrets)"
    );
}

#[tokio::test]
async fn timeouts_and_response_limits_hold() {
    let up = Upstream::start().await;
    let rt = "[http]\nmax_response = \"1KiB\"\ntimeout = \"5s\"\n";
    let app = load(&manifest(&format!("\"{}\"", up.origin()), ""), Some(rt), &[])
        .await
        .unwrap();
    let err = fetch(&app, json!({"url": up.url("/big")})).await.unwrap_err();
    assert!(err.contains("larger than the limit of 1024 bytes"), "{err}");
    let err = fetch(&app, json!({"url": up.url("/slow"), "timeout_ms": 200}))
        .await
        .unwrap_err();
    assert!(err.contains("timed out"), "{err}");
}

#[tokio::test]
async fn variables_come_from_the_runtime_config_or_their_default() {
    let app = load(&manifest("\"https://example.com\"", ""), Some(RUNTIME), &[])
        .await
        .unwrap();
    assert_eq!(app.call("reader", "var", "greeting").await.unwrap(), "\"hello\"");
    // `region` is declared, optional and unset: no value.
    let out = app.call("reader", "var", "region").await.unwrap();
    assert_eq!(out, "null");
    assert_eq!(
        app.call("reader", "var", "db_password").await.unwrap(),
        "\"pw-77-SUPERSECRET\""
    );
    let err = app.call("reader", "var", "nonexistent").await.unwrap_err().message();
    assert!(err.contains("unknown variable \"nonexistent\""), "{err}");
    let err = app.call("nothing", "var", "greeting").await.unwrap_err().message();
    assert!(
        err.contains("capability \"vars\" is not granted to function \"nothing\""),
        "{err}"
    );
}

#[tokio::test]
async fn a_required_variable_without_a_value_stops_the_load() {
    let m = manifest("\"https://example.com\"", "").replace("region = { }", "region = { required = true }");
    let err = load(&m, None, &[]).await.err().unwrap();
    assert!(err.contains("atoll.toml:7:1: variables.region"), "{err}");
    assert!(err.contains("set ATOLL_VAR_REGION in the environment"), "{err}");
}

#[tokio::test]
async fn static_files_are_readable_and_nothing_else_is() {
    let files = [("index.html", "<h1>welcome</h1>"), ("css/site.css", "body{}")];
    let app = load(&manifest("\"https://example.com\"", ""), Some(RUNTIME), &files)
        .await
        .unwrap();
    assert_eq!(
        app.call("reader", "file", "index.html").await.unwrap(),
        "<h1>welcome</h1>"
    );
    assert_eq!(app.call("reader", "file", "css/site.css").await.unwrap(), "body{}");
    assert_eq!(
        app.call("reader", "file", "/").await.unwrap(),
        "[\"css/\",\"index.html\"]"
    );
    let missing = app.call("reader", "file", "nope.txt").await.unwrap_err();
    assert_eq!(missing.status(), 404);
    std::fs::write(app.dir.path().join("atoll-secret.txt"), "outside").unwrap();
    for attempt in [
        "../atoll-secret.txt",
        "../atoll.toml",
        "/etc/passwd",
        "css/../../atoll.toml",
        "..\\atoll.toml",
    ] {
        let err = app.call("reader", "file", attempt).await.unwrap_err().message();
        assert!(err.starts_with("files: "), "{attempt}: {err}");
    }
    let err = app.call("nothing", "file", "index.html").await.unwrap_err().message();
    assert!(err.contains("capability \"files\" is not granted"), "{err}");
}

/// What a guest can reach through WASI or raw host calls without grants.
#[tokio::test]
async fn a_guest_cannot_get_around_its_grants() {
    let app = load(&manifest("\"https://example.com\"", ""), None, &[]).await.unwrap();
    let report = app.json("nothing", "escape", json!(null)).await.unwrap();
    assert!(
        report["read_etc_passwd"].is_string(),
        "the host file system is not reachable: {report}"
    );
    assert!(
        report["read_cwd"].is_string(),
        "there is no working directory: {report}"
    );
    assert_eq!(report["env_home"], json!(null), "{report}");
    assert_eq!(report["env_count"], 0, "{report}");
    assert!(
        report["other_store"].as_str().unwrap().contains("not granted"),
        "{report}"
    );
    assert!(
        report["raw_host_call"].as_str().unwrap().contains("not granted"),
        "{report}"
    );
}

#[tokio::test]
async fn http_not_granted_is_refused_whatever_the_url() {
    let up = Upstream::start().await;
    let app = load(&manifest(&format!("\"{}\"", up.origin()), ""), None, &[])
        .await
        .unwrap();
    let err = app
        .json("nothing", "fetch", json!({"url": up.url("/hello")}))
        .await
        .unwrap_err();
    assert!(
        err.contains("capability \"http\" is not granted to function \"nothing\""),
        "{err}"
    );
    assert!(up.received().is_empty());
}

/// The request's trace goes on with the function's outbound requests, with
/// Atoll's span as their parent, unless the function sets its own.
#[tokio::test]
async fn outbound_requests_carry_the_requests_trace() {
    use atoll_caps::trace::TraceContext;
    let up = Upstream::start().await;
    let app = load(&manifest(&format!("\"{}\"", up.origin()), ""), Some(RUNTIME), &[])
        .await
        .unwrap();
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "traceparent",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
            .parse()
            .unwrap(),
    );
    headers.insert("tracestate", "vendor=abc".parse().unwrap());
    let request = || atoll_runtime::RequestInfo {
        trace: Some(TraceContext::continue_or_start(&headers)),
        ..Default::default()
    };
    let header = |name: &str| {
        up.received()
            .pop()
            .unwrap()
            .headers
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    };
    let fetch = json!({"url": up.url("/hello")}).to_string();
    app.call_for("caller", "fetch", &fetch, request()).await.unwrap();
    let received = up.received().pop().unwrap();
    let sent = received
        .headers
        .iter()
        .find(|(n, _)| n == "traceparent")
        .map(|(_, v)| v.clone())
        .expect("the trace is carried on");
    assert!(sent.starts_with("00-0af7651916cd43dd8448eb211c80319c-"), "{sent}");
    assert!(!sent.contains("b7ad6b7169203331"), "Atoll's span is the parent: {sent}");
    assert!(
        received
            .headers
            .iter()
            .any(|(n, v)| n == "tracestate" && v == "vendor=abc"),
        "{received:?}"
    );

    let own = json!({"url": up.url("/hello"), "headers": [["traceparent", "00-11111111111111111111111111111111-2222222222222222-00"]]});
    app.call_for("caller", "fetch", &own.to_string(), request())
        .await
        .unwrap();
    assert_eq!(
        header("traceparent").as_deref(),
        Some("00-11111111111111111111111111111111-2222222222222222-00")
    );
    // Outside any trace (`atoll call` without one, a test), nothing is added.
    app.call("caller", "fetch", &fetch).await.unwrap();
    assert_eq!(header("traceparent"), None);
}
