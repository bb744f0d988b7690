//! wasi:http components end to end: a real server on loopback and a
//! component built from `tests/guests/wasi-http-rust` for wasm32-wasip2
//! with the `wasi` crate, as `wasmtime serve` examples are.

mod support;

use atoll_http::HttpConfig;
use atoll_testkit::guest_path;
use http::{Method, StatusCode};
use std::time::{Duration, Instant};
use support::{Reply, TestServer, capture_logs, get, logged, send};

/// Small enough that the output limit is quick to reach, larger than the
/// streaming function's memory.
const MAX_OUTPUT: usize = 16 << 20;

fn manifest(upstream: &str) -> String {
    let p = |n: &str| guest_path(n).display().to_string().replace('\\', "/");
    format!(
        r#"
[app]
name = "components"

[variables]
greeting = {{ default = "hi" }}
token = {{ secret = true }}
hidden = {{ secret = true }}

[functions.web]
source = "{component}"
abi = "wasi-http"
timeout = "500ms"
memory = "16MiB"
capabilities = ["http", "files", "log", "kv", "vars"]
allowed_hosts = ["{upstream}"]
secrets = ["token"]

[functions.counter]
source = "{caps}"
capabilities = ["kv"]

[functions.bare]
source = "{component}"
abi = "wasi-http"

[functions.wide]
source = "{component}"
abi = "wasi-http"
capabilities = ["http"]
allowed_hosts = ["http://*:*"]

[functions.small]
source = "{component}"
abi = "wasi-http"
memory = "4MiB"

[functions.upper]
source = "{plain}"

[functions.old]
source = "{old}"
abi = "wasi-http"

[[routes]]
path = "/web/*rest"
fn = "web"

[[routes]]
path = "/old/*rest"
fn = "old"

[[routes]]
path = "/counter"
steps = [{{ fn = "counter", op = "visit" }}]

[[routes]]
path = "/bare/*rest"
fn = "bare"

[[routes]]
path = "/wide/*rest"
fn = "wide"

[[routes]]
method = "POST"
path = "/small/*rest"
fn = "small"
max_body = "64MiB"

[[routes]]
method = "POST"
path = "/greet/*rest"
steps = [{{ fn = "upper", op = "hello", as = "greeting" }}, {{ fn = "bare", input = "greeting" }}]

[[routes]]
path = "/twice/*rest"
steps = [{{ fn = "bare", as = "first" }}, {{ fn = "bare" }}]

[[routes]]
method = "POST"
path = "/chain/*rest"
steps = [{{ fn = "upper", op = "upper", as = "loud" }}, {{ fn = "bare", input = "loud" }}]
"#,
        component = p("wasi-http-rust"),
        plain = p("wapc-plain"),
        caps = p("caps-fixture"),
        old = p("wasi-http-old"),
    )
}

async fn start(upstream: &str) -> TestServer {
    start_with(upstream, HttpConfig::default()).await
}

async fn start_with(upstream: &str, http: HttpConfig) -> TestServer {
    TestServer::sandbox_app(&manifest(upstream), MAX_OUTPUT, http).await
}

/// A server whose `web` function may reach nothing in particular.
async fn start_alone() -> TestServer {
    start("https://example.com").await
}

/// The `info` mode's `name=value` line for `name`.
fn line(reply: &Reply, name: &str) -> Option<String> {
    let prefix = format!("{name}=");
    reply
        .text()
        .lines()
        .find_map(|l| l.strip_prefix(&prefix).map(str::to_string))
}

fn error_of(r: &Reply) -> String {
    r.json()["error"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn an_unmodified_component_answers_with_its_status_headers_and_body() {
    let s = start_alone().await;
    let r = get(s.addr, "/web/hello").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.text(), "Hello from a component!");
    assert_eq!(r.header("content-type"), Some("text/plain"));

    let r = get(s.addr, "/web/status").await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.header("x-component"), Some("yes"));
    assert_eq!(r.text(), "created");
    s.stop().await;
}

/// Built against wasi:http 0.2.0 (and its std against 0.2.6), served by
/// Atoll's 0.2.12: imports and the export match semver-compatibly.
#[tokio::test]
async fn a_component_built_against_an_older_wasi_0_2_answers() {
    let s = start_alone().await;
    let r = get(s.addr, "/old/x?y=1").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.text(), "hello from wasi:http 0.2.0 at /old/x?y=1");
    s.stop().await;
}

#[tokio::test]
async fn a_component_sees_the_request_without_forbidden_headers_or_the_host() {
    let s = start_alone().await;
    let r = send(
        s.addr,
        Method::PUT,
        "/web/info?a=1",
        &[
            ("x-token", "abc"),
            ("connection", "keep-alive"),
            ("proxy-authorization", "Basic eA=="),
        ],
        b"twelve bytes",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let text = r.text();
    assert_eq!(line(&r, "method").as_deref(), Some("PUT"), "{text}");
    assert_eq!(line(&r, "path").as_deref(), Some("/web/info?a=1"), "{text}");
    assert_eq!(line(&r, "authority"), Some(s.addr.to_string()), "{text}");
    assert_eq!(line(&r, "header x-token").as_deref(), Some("abc"), "{text}");
    assert_eq!(line(&r, "body").as_deref(), Some("12"), "{text}");
    for forbidden in ["host", "connection", "proxy-authorization"] {
        assert_eq!(
            line(&r, &format!("header {forbidden}")),
            None,
            "{forbidden} in:\n{text}"
        );
    }
    // Nothing of the host: no environment, no arguments, no files.
    assert_eq!(line(&r, "env").as_deref(), Some("0"), "{text}");
    assert_eq!(line(&r, "args").as_deref(), Some("0"), "{text}");
    // `files` preopens static/ read-only; without it there is nothing.
    assert_eq!(line(&r, "static").as_deref(), Some("from static"), "{text}");
    let bare = get(s.addr, "/bare/info").await;
    assert!(line(&bare, "static").unwrap().starts_with("none"), "{}", bare.text());
    assert_eq!(line(&bare, "root entries").as_deref(), Some("0"), "{}", bare.text());
    s.stop().await;
}

#[tokio::test]
async fn a_component_is_a_pipeline_step_after_a_wapc_function() {
    let s = start_alone().await;
    let r = send(s.addr, Method::POST, "/chain/echo", &[], b"quiet words").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.text(), "QUIET WORDS");
    // The component's request carries the length of what it is handed,
    // not of the client's body.
    let r = send(s.addr, Method::POST, "/greet/info", &[], b"quiet words, and more").await;
    assert_eq!(line(&r, "body").as_deref(), Some("13"), "{}", r.text());
    assert_eq!(line(&r, "header content-length").as_deref(), Some("13"), "{}", r.text());
    s.stop().await;
}

/// A route that is one component streams both bodies: neither the
/// component's memory (4 MiB) nor the server's limit on buffered output
/// (16 MiB) bounds them, only the route's `max_body`.
#[tokio::test]
async fn a_body_larger_than_the_components_memory_streams_through_it() {
    let s = start_alone().await;
    let body: Vec<u8> = (0..24u32 << 20).map(|i| (i % 251) as u8).collect();
    let r = send(s.addr, Method::POST, "/small/echo", &[], &body).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body[..200.min(r.body.len())])
    );
    assert_eq!(r.body.len(), body.len());
    assert!(r.body == body, "the echoed body differs");

    let r = get(s.addr, &format!("/bare/big?{}", MAX_OUTPUT * 2)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body.len(), MAX_OUTPUT * 2);

    // The route's limit still holds, before the component runs.
    let r = send(s.addr, Method::POST, "/small/echo", &[], &vec![0; 65 << 20]).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.text());
    s.stop().await;
}

#[tokio::test]
async fn traps_loops_bombs_and_floods_fail_only_their_request() {
    let s = start_alone().await;
    let addr = s.addr;
    // Good traffic all along, on other connections.
    let good = tokio::spawn(async move {
        let mut answered = 0;
        for _ in 0..40 {
            let r = get(addr, "/web/hello").await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text());
            answered += 1;
        }
        answered
    });

    let r = get(s.addr, "/web/trap").await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    let e = r.json();
    assert_eq!(e["function"], "web");
    assert!(error_of(&r).contains("trapped"), "{}", error_of(&r));

    let started = Instant::now();
    let r = get(s.addr, "/web/loop").await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT, "{}", r.text());
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());

    let r = get(s.addr, "/web/bomb").await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(error_of(&r).contains("memory limit of 16MiB"), "{}", error_of(&r));

    // In a pipeline a component's output is a state entry, held whole: the
    // output limit applies.
    let r = get(s.addr, &format!("/twice/big?{}", MAX_OUTPUT * 2)).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        error_of(&r).contains(&format!("larger than the server's limit of {MAX_OUTPUT} bytes")),
        "{}",
        error_of(&r)
    );

    let r = get(s.addr, "/web/noresponse").await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        error_of(&r).contains("function \"web\" returned without setting a response"),
        "{}",
        error_of(&r)
    );

    assert_eq!(good.await.unwrap(), 40);
    let r = get(s.addr, "/web/big?100000").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body.len(), 100_000);
    s.stop().await;
}

#[tokio::test]
async fn outbound_requests_go_through_the_functions_grant_and_the_address_policy() {
    let upstream = start_alone().await;
    let origin = format!("http://{}", upstream.addr);
    let s = start(&origin).await;

    // Granted, and the upstream named exactly: it reaches the loopback server.
    let r = get(s.addr, &format!("/web/fetch?{origin}/web/hello")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.text(), "upstream 200: Hello from a component!");

    // Not in allowed_hosts.
    let other = format!("http://127.0.0.1:{}/web/hello", upstream.addr.port() + 1);
    let r = get(s.addr, &format!("/web/fetch?{other}")).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert!(
        r.text().contains("is not in the function's allowed_hosts"),
        "{}",
        r.text()
    );

    // A wildcard never reaches a private address.
    let r = get(s.addr, &format!("/wide/fetch?{origin}/web/hello")).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert!(r.text().contains("non-public address"), "{}", r.text());

    // No grant: an error from outgoing-handler, never a connection.
    let r = get(s.addr, &format!("/bare/fetch?{origin}/web/hello")).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert!(
        r.text().contains("function \\\"bare\\\" is not granted outbound HTTP")
            || r.text().contains("function \"bare\" is not granted outbound HTTP"),
        "{}",
        r.text()
    );
    // A component's outbound requests are host calls in the metrics: one
    // answered, two refused by the address policy (failed), one without
    // the grant (refused).
    let metrics = get(s.addr, "/-/metrics").await.text();
    for (outcome, n) in [("ok", 1), ("failed", 2), ("refused", 1)] {
        let series = format!(r#"atoll_host_calls_total{{namespace="http",outcome="{outcome}"}} {n}"#);
        assert!(metrics.contains(&series), "{series} in {metrics}");
    }
    s.stop().await;
    upstream.stop().await;
}

/// A trace followed across two services: the client's `traceparent` is
/// continued by the first Atoll, whose component's outbound request carries
/// it (with Atoll's span as the parent) to the second, and both log the
/// same trace id on their request lines.
#[tokio::test]
async fn a_trace_is_followed_from_the_client_through_a_component_to_its_upstream() {
    capture_logs();
    let upstream = start_alone().await;
    let origin = format!("http://{}", upstream.addr);
    let s = start(&origin).await;
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let incoming = format!("00-{trace}-b7ad6b7169203331-01");
    let r = send(
        s.addr,
        Method::GET,
        &format!("/web/fetch?{origin}/web/info"),
        &[("traceparent", &incoming), ("tracestate", "vendor=abc")],
        b"",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let text = r.text();
    let sent = text
        .lines()
        .find_map(|l| l.strip_prefix("header traceparent="))
        .unwrap_or_else(|| panic!("the upstream saw no traceparent: {text}"));
    assert!(sent.starts_with(&format!("00-{trace}-")), "{sent}");
    assert!(sent.ends_with("-01"), "{sent}");
    assert_ne!(
        &sent[36..52],
        "b7ad6b7169203331",
        "Atoll's span is the parent, not the client's"
    );
    assert!(text.contains("header tracestate=vendor=abc"), "{text}");

    // Without one, a trace is started, and still carried on.
    let r = get(s.addr, &format!("/web/fetch?{origin}/web/info")).await;
    let started = r
        .text()
        .lines()
        .find_map(|l| l.strip_prefix("header traceparent=").map(str::to_string))
        .expect("a started trace is carried on");
    assert!(!started.contains(trace));
    s.stop().await;
    upstream.stop().await;

    let lines: Vec<serde_json::Value> = logged()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|l: &serde_json::Value| l["fields"]["message"] == "request" && l["fields"]["trace_id"] == trace)
        .collect();
    assert_eq!(
        lines.len(),
        2,
        "both services log the trace on their request line: {lines:?}"
    );
}

#[tokio::test]
async fn a_component_streams_to_an_upstream_and_back_at_once() {
    // The upstream is Atoll too: its `echo` streams the body back as it
    // arrives. The relaying component waits for the upstream's response
    // before finishing its request body, then sends each piece only after
    // the previous one came back; gathering the request body first would
    // leave it waiting until its timeout.
    let upstream = start_alone().await;
    let origin = format!("http://{}", upstream.addr);
    let s = start(&origin).await;
    let r = get(s.addr, &format!("/web/relay?{origin}/web/echo")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let expected: String = (0..40).map(|i| format!("piece {i};")).collect();
    assert_eq!(r.text(), expected);
    s.stop().await;
    upstream.stop().await;
}

#[tokio::test]
async fn a_component_and_a_wapc_function_share_one_counter_through_wasi_keyvalue() {
    let s = start_alone().await;
    let mut seen = Vec::new();
    for i in 0..4 {
        let path = if i % 2 == 0 { "/web/visit" } else { "/counter" };
        let r = get(s.addr, path).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text());
        seen.push(r.text());
    }
    assert_eq!(seen, ["1", "2", "3", "4"]);

    // `""` and `"default"` are both the default store.
    let r = get(s.addr, "/web/visit?default").await;
    assert_eq!(r.text(), "5");

    let r = get(s.addr, "/web/kv").await;
    assert_eq!(r.text(), "a=Some(\"1\") many=1 keys=3 left=(true, false, false)");

    // A store not granted does not exist for the function; without `kv`
    // nothing does.
    let r = get(s.addr, "/web/visit?elsewhere").await;
    assert_eq!(r.text(), "kv failed: Error::NoSuchStore");
    let r = get(s.addr, "/bare/visit").await;
    assert_eq!(r.text(), "kv failed: Error::AccessDenied");

    // The component's store calls are host calls in the metrics, as the
    // waPC function's are: the two refused opens among them.
    let metrics = get(s.addr, "/-/metrics").await.text();
    assert!(
        metrics.contains(r#"atoll_host_calls_total{namespace="kv",outcome="refused"} 2"#),
        "{metrics}"
    );
    s.stop().await;
}

/// Spin 3's `wasi:keyvalue@0.2.0-draft2` beside the draft, in one
/// component: one counter for both versions and the waPC function, and
/// compare-and-swap that fails over a write made since its handle read.
#[tokio::test]
async fn wasi_keyvalue_draft2_shares_the_store_and_compare_and_swap_sees_other_writes() {
    let s = start_alone().await;
    let mut seen = Vec::new();
    for path in ["/web/visit2", "/counter", "/web/visit", "/web/visit2?default"] {
        let r = get(s.addr, path).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text());
        seen.push(r.text());
    }
    assert_eq!(seen, ["1", "2", "3", "4"]);

    // get-many answers each key asked for; a cursor list-keys did not give
    // is an error, not a trap; increment goes below zero.
    let r = get(s.addr, "/web/kv2").await;
    assert_eq!(
        r.text(),
        "a=Some(\"1\") many=[tour2-b:Some(\"2\"),tour2-x:None] keys=3 cursor=None bad-cursor=true left=(true, false, false) down=-5"
    );

    // The guest writes the key between making its handle and swapping:
    // the swap is `cas-failed` with a handle on that write, and the retry
    // on it lands. On an absent key, then on one holding a value.
    let r = get(s.addr, "/web/cas2?slot").await;
    assert_eq!(
        r.text(),
        "saw None\ncas-failed, now Some(\"theirs\")\nretry swapped\nleft Some(\"mine\")"
    );
    let r = get(s.addr, "/web/cas2?slot").await;
    assert_eq!(
        r.text(),
        "saw Some(\"mine\")\ncas-failed, now Some(\"theirs\")\nretry swapped\nleft Some(\"mine\")"
    );
    // Without the store, or without `kv`, an error the guest can read.
    let r = get(s.addr, "/web/visit2?elsewhere").await;
    assert_eq!(r.text(), "kv failed: Error::NoSuchStore");
    let r = get(s.addr, "/bare/visit2").await;
    assert_eq!(r.text(), "kv failed: Error::AccessDenied");
    let r = get(s.addr, "/bare/cas2?slot").await;
    assert_eq!(r.text(), "kv failed: Error::AccessDenied");
    s.stop().await;
}

#[tokio::test]
async fn wasi_config_shows_granted_variables_and_only_listed_secrets() {
    let s = start_alone().await;
    let text = |r: Reply| r.text();
    assert_eq!(
        text(get(s.addr, "/web/config?greeting").await),
        "greeting=hi\nvisible=2"
    );
    assert_eq!(text(get(s.addr, "/web/config?token").await), "token=s3cret\nvisible=2");
    assert_eq!(
        text(get(s.addr, "/web/config?hidden").await),
        "hidden is not set\nvisible=2"
    );
    assert_eq!(
        text(get(s.addr, "/bare/config?greeting").await),
        "greeting is not set\nvisible=0"
    );
    // The interface's other names (wasmCloud's `runtime`, Spin's dated
    // draft, Wasmtime's release candidate) read the same variables under
    // the same grants.
    for name in ["config-runtime", "config-dated", "config-rc"] {
        assert_eq!(
            text(get(s.addr, &format!("/web/{name}?token")).await),
            "Ok(Some(\"s3cret\"))"
        );
        assert_eq!(text(get(s.addr, &format!("/web/{name}?hidden")).await), "Ok(None)");
        assert_eq!(text(get(s.addr, &format!("/bare/{name}?greeting")).await), "Ok(None)");
    }
    s.stop().await;
}

#[tokio::test]
async fn wasi_logging_and_stderr_reach_the_host_log_only_with_the_log_grant() {
    capture_logs();
    let s = start_alone().await;
    assert_eq!(get(s.addr, "/bare/log").await.text(), "logged");
    let traced = [("traceparent", "00-5c0ffee15c0ffee15c0ffee15c0ffee1-b7ad6b7169203331-01")];
    assert_eq!(
        send(s.addr, Method::GET, "/web/log", &traced, b"").await.text(),
        "logged"
    );
    s.stop().await;
    let lines: Vec<serde_json::Value> = logged()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|l: &serde_json::Value| l["target"] == "atoll::guest")
        .collect();
    let said = |text: &str, function: &str| {
        lines.iter().any(|l| {
            l["fields"]["message"].as_str().is_some_and(|m| m.contains(text)) && l["fields"]["function"] == function
        })
    };
    assert!(said("[tests] hello from wasi:logging", "web"), "{lines:?}");
    assert!(said("[stderr] hello from stderr", "web"), "{lines:?}");
    // Both tagged with the request's trace.
    let traced = lines
        .iter()
        .filter(|l| l["fields"]["function"] == "web")
        .filter(|l| l["fields"]["trace_id"] == "5c0ffee15c0ffee15c0ffee15c0ffee1")
        .count();
    assert_eq!(traced, 2, "{lines:?}");
    assert!(!said("hello from", "bare"), "{lines:?}");
}

/// A component that carries on after its response (the client already has
/// it) is waited for by the drain, not cut off by the shutdown.
#[tokio::test]
async fn a_drain_waits_for_work_a_component_does_after_its_response() {
    capture_logs();
    let s = start_alone().await;
    let sent = Instant::now();
    assert_eq!(get(s.addr, "/web/later?400").await.text(), "sent");
    assert!(
        sent.elapsed() < Duration::from_millis(400),
        "the response waited for the guest's later work: {:?}",
        sent.elapsed()
    );
    s.stop().await;
    assert!(
        sent.elapsed() >= Duration::from_millis(400),
        "the drain ended before the guest did"
    );
    let finished = logged()
        .lines()
        .filter(|l| l.contains("atoll::guest"))
        .any(|l| l.contains("[stderr] finished after the response"));
    assert!(finished, "the guest's last words were lost: {}", logged());
}

/// Trailers pass through a streamed route both ways (HTTP/2, where no
/// declaration is needed).
#[tokio::test]
async fn trailers_pass_through_a_streamed_component_both_ways() {
    use http_body_util::BodyExt;
    use hyper::body::Frame;
    let s = start_alone().await;
    let mut trailers = http::HeaderMap::new();
    trailers.insert("x-sum", "42".parse().unwrap());
    let body = Frames(
        vec![
            Frame::data(bytes::Bytes::from_static(b"hello ")),
            Frame::data(bytes::Bytes::from_static(b"trailers")),
            Frame::trailers(trailers),
        ]
        .into(),
    );
    let tcp = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), hyper_util::rt::TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = http::Request::builder()
        .method(Method::POST)
        .uri(format!("http://{}/web/trailers", s.addr))
        .body(body)
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let collected = resp.into_body().collect().await.unwrap();
    let got = collected.trailers().cloned();
    let text = String::from_utf8_lossy(&collected.to_bytes()).into_owned();
    assert_eq!(text, "body=14 trailers=[x-sum=42]");
    assert_eq!(
        got.as_ref()
            .and_then(|t| t.get("x-length"))
            .map(|v| v.to_str().unwrap()),
        Some("14"),
        "{got:?}"
    );
    s.stop().await;
}

/// A component cut off by its deadline after sending its head ends the
/// response early: the client sees an incomplete body, never a complete
/// looking one.
#[tokio::test]
async fn a_component_cut_off_mid_body_ends_the_response_early() {
    use http_body_util::BodyExt;
    let s = start_alone().await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    // `web` has 500 ms: far too little to write 1 GiB.
    let uri = format!("http://{}/web/big?{}", s.addr, 1u64 << 30);
    let resp = client.get(uri.parse().unwrap()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.into_body().collect().await;
    assert!(
        body.is_err(),
        "the body must end in an error, not look complete: {:?}",
        body.map(|b| b.to_bytes().len())
    );
    // The server goes on serving.
    assert_eq!(get(s.addr, "/web/hello").await.text(), "Hello from a component!");
    s.stop().await;
}

/// A request body of the given frames, trailers included.
struct Frames(std::collections::VecDeque<hyper::body::Frame<bytes::Bytes>>);

impl hyper::body::Body for Frames {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Self::Error>>> {
        std::task::Poll::Ready(self.0.pop_front().map(Ok))
    }
}

/// A streamed request body is held to `--body-timeout` too: a client that
/// stalls mid-body ends it, and the component reading it fails at once
/// instead of waiting for its deadline.
#[tokio::test]
async fn a_stalled_streamed_body_fails_the_component_reading_it() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let http = HttpConfig {
        body_timeout: Duration::from_millis(300),
        ..HttpConfig::default()
    };
    let s = start_with("https://example.com", http).await;
    let mut tcp = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let started = Instant::now();
    tcp.write_all(b"POST /bare/info HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\nten bytes.")
        .await
        .unwrap();
    let mut reply = vec![0; 4096];
    let n = tokio::time::timeout(Duration::from_secs(3), tcp.read(&mut reply))
        .await
        .expect("answered before the function's deadline")
        .unwrap();
    let reply = String::from_utf8_lossy(&reply[..n]).into_owned();
    assert!(reply.starts_with("HTTP/1.1 500"), "{reply}");
    assert!(reply.contains("trapped"), "{reply}");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    s.stop().await;
}
