//! The HTTP trigger end to end: a real server on loopback, real guests.

mod support;

use atoll_engine::{Engine, EngineConfig};
use atoll_http::HttpConfig;
use atoll_runtime::{App, RuntimeConfig};
use atoll_testkit::{guest_path, shared_cache_dir};
use http::{Method, StatusCode};
use std::time::{Duration, Instant};
use support::{TestServer, get, send};

fn manifest() -> String {
    let p = |n: &str| guest_path(n).display().to_string().replace('\\', "/");
    format!(
        r#"
[app]
name = "http-test"

[functions.plain]
source = "{plain}"
timeout = "500ms"
memory = "16MiB"

[functions.slow]
source = "{plain}"
timeout = "2s"

[functions.sdk]
source = "{sdk}"
capabilities = ["log"]

[functions.as]
source = "{as_}"

[[routes]]
method = "POST"
path = "/echo/:name"
steps = [{{ fn = "plain", op = "ping" }}]

[[routes]]
method = "GET"
path = "/inspect/:name/*rest"
fn = "sdk"

[[routes]]
path = "/fail"
steps = [{{ fn = "plain", op = "fail" }}]

[[routes]]
path = "/spin"
steps = [{{ fn = "plain", op = "spin" }}]

[[routes]]
path = "/slow-spin"
steps = [{{ fn = "slow", op = "spin" }}]

[[routes]]
method = "POST"
path = "/grow"
steps = [{{ fn = "plain", op = "grow" }}]

[[routes]]
path = "/panic"
steps = [{{ fn = "plain", op = "panic" }}]

[[routes]]
path = "/missing"
steps = [{{ fn = "sdk", op = "not_found" }}]

[[routes]]
method = "POST"
path = "/small"
max_body = "1KiB"
steps = [{{ fn = "plain", op = "ping" }}]

[[routes]]
method = ["GET", "POST"]
path = "/as"
steps = [{{ fn = "as", op = "shout" }}]

[[routes]]
method = "GET"
path = "/two/:name"
steps = [{{ fn = "plain", op = "upper" }}, {{ fn = "sdk", op = "greet" }}]
"#,
        plain = p("wapc-plain"),
        sdk = p("sdk-fixture"),
        as_ = p("as-echo"),
    )
}

async fn start(config: HttpConfig) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("atoll.toml"), manifest()).unwrap();
    let engine = Engine::new(EngineConfig {
        cache_dir: Some(shared_cache_dir()),
        max_instances: 64,
        ..EngineConfig::default()
    })
    .unwrap();
    let app = App::load(dir.path(), &engine, &RuntimeConfig::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    TestServer::serve(app, config, dir).await
}

#[tokio::test]
async fn a_plain_wapc_guest_is_a_handler_body_in_body_out() {
    let s = start(HttpConfig::default()).await;
    let r = send(s.addr, Method::POST, "/echo/ada", &[], b"hello body").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.text(), "hello body");
    let id = r.header("x-request-id").unwrap();
    assert_eq!(id.len(), 16);
    s.stop().await;
}

#[tokio::test]
async fn functions_see_the_request_and_shape_the_response() {
    let s = start(HttpConfig::default()).await;
    let r = send(
        s.addr,
        Method::GET,
        "/inspect/ada%20l/a/b/c?q=caf%C3%A9&x=1",
        &[("x-agent", "tests")],
        b"",
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.header("x-fixture"), Some("sdk"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v = r.json();
    assert_eq!(v["method"], "GET");
    assert_eq!(v["path"], "/inspect/ada%20l/a/b/c");
    assert_eq!(v["name"], "ada l");
    assert_eq!(v["rest"], "a/b/c");
    assert_eq!(v["q"], "café");
    assert_eq!(v["query"], "q=caf%C3%A9&x=1");
    assert_eq!(v["agent"], "tests");
    s.stop().await;
}

#[tokio::test]
async fn unknown_paths_are_404_and_wrong_methods_405_with_allow() {
    let s = start(HttpConfig::default()).await;
    let r = get(s.addr, "/nowhere").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json()["error"], "no route for GET /nowhere");
    assert_eq!(r.json()["request_id"], r.header("x-request-id").unwrap());

    let r = send(s.addr, Method::DELETE, "/echo/x", &[], b"").await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.header("allow"), Some("POST"));
    s.stop().await;
}

#[tokio::test]
async fn a_guest_error_is_a_500_with_a_json_body() {
    let s = start(HttpConfig::default()).await;
    let r = get(s.addr, "/fail").await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    let v = r.json();
    assert_eq!(v["error"], "this function fails on purpose");
    assert_eq!(v["function"], "plain");
    assert_eq!(v["request_id"], r.header("x-request-id").unwrap());
    s.stop().await;
}

#[tokio::test]
async fn a_function_can_fail_with_its_own_status() {
    let s = start(HttpConfig::default()).await;
    let r = get(s.addr, "/missing").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json()["error"], "nothing at /missing");
    assert_eq!(r.json()["function"], "sdk");
    s.stop().await;
}

#[tokio::test]
async fn hostile_guests_fail_only_their_own_request() {
    let s = start(HttpConfig::default()).await;
    let started = Instant::now();
    let r = get(s.addr, "/spin").await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT);
    assert!(r.json()["error"].as_str().unwrap().contains("deadline"));
    assert!(started.elapsed() < Duration::from_secs(5));

    let r = send(s.addr, Method::POST, "/grow", &[], b"64").await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        r.json()["error"].as_str().unwrap().contains("memory limit of 16MiB"),
        "{}",
        r.text()
    );

    let r = get(s.addr, "/panic").await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(r.json()["error"].as_str().unwrap().contains("trapped"));

    let r = send(s.addr, Method::POST, "/echo/ok", &[], b"still serving").await;
    assert_eq!(r.text(), "still serving");
    s.stop().await;
}

#[tokio::test]
async fn a_looping_request_does_not_slow_the_others() {
    let s = start(HttpConfig::default()).await;
    let addr = s.addr;
    let spinning: Vec<_> = (0..2)
        .map(|_| tokio::spawn(async move { get(addr, "/slow-spin").await }))
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    for i in 0..20 {
        let r = send(addr, Method::POST, "/echo/x", &[], format!("n{i}").as_bytes()).await;
        assert_eq!(r.text(), format!("n{i}"));
    }
    // The others were served while both looping requests still ran.
    assert!(spinning.iter().all(|t| !t.is_finished()));
    for t in spinning {
        assert_eq!(t.await.unwrap().status, StatusCode::GATEWAY_TIMEOUT);
    }
    s.stop().await;
}

#[tokio::test]
async fn bodies_over_the_limit_get_413() {
    let s = start(HttpConfig::default()).await;
    let r = send(s.addr, Method::POST, "/small", &[], &[b'a'; 1024]).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = send(s.addr, Method::POST, "/small", &[], &[b'a'; 1025]).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(r.json()["error"].as_str().unwrap().contains("1024 bytes"));

    // Without Content-Length (chunked), the limit still holds.
    let mut stream = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let chunk = "a".repeat(800);
    let raw = format!(
        "POST /small HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n320\r\n{chunk}\r\n320\r\n{chunk}\r\n0\r\n\r\n"
    );
    stream.write_all(raw.as_bytes()).await.unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 413"), "{out}");
    s.stop().await;
}

#[tokio::test]
async fn over_capacity_answers_503_with_retry_after() {
    let s = start(HttpConfig {
        max_concurrency: 1,
        ..HttpConfig::default()
    })
    .await;
    let addr = s.addr;
    let busy = tokio::spawn(async move { get(addr, "/slow-spin").await });
    // Poll until the spinning request holds the only permit.
    let mut refused = None;
    for _ in 0..150 {
        let r = send(addr, Method::POST, "/echo/x", &[], b"").await;
        if r.status == StatusCode::SERVICE_UNAVAILABLE {
            refused = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let r = refused.expect("a request beyond the concurrency limit must get 503");
    assert!(
        !busy.is_finished(),
        "the 503 came while the first request was in flight"
    );
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(busy.await.unwrap().status, StatusCode::GATEWAY_TIMEOUT);
    let r = send(addr, Method::POST, "/echo/x", &[], b"again").await;
    assert_eq!(r.text(), "again");
    s.stop().await;
}

#[tokio::test]
async fn request_ids_are_kept_when_plain_and_replaced_otherwise() {
    let s = start(HttpConfig::default()).await;
    let r = send(s.addr, Method::POST, "/echo/x", &[("x-request-id", "abc-123_X.y")], b"").await;
    assert_eq!(r.header("x-request-id"), Some("abc-123_X.y"));
    let r = send(
        s.addr,
        Method::POST,
        "/echo/x",
        &[("x-request-id", "bad id\" injected")],
        b"",
    )
    .await;
    let id = r.header("x-request-id").unwrap();
    assert_ne!(id, "bad id\" injected");
    assert_eq!(id.len(), 16);
    s.stop().await;
}

#[tokio::test]
async fn head_is_served_by_the_get_route_without_a_body() {
    let s = start(HttpConfig::default()).await;
    let r = send(s.addr, Method::HEAD, "/inspect/a/b", &[], b"").await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert!(r.body.is_empty());
    s.stop().await;
}

#[tokio::test]
async fn health_and_readiness() {
    let s = start(HttpConfig::default()).await;
    assert_eq!(get(s.addr, "/-/health").await.json()["status"], "ok");
    let r = get(s.addr, "/-/ready").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["status"], "ready");
    assert_eq!(get(s.addr, "/-/nothing").await.status, StatusCode::NOT_FOUND);
    s.stop().await;
}

/// During a drain the listener is closed and hyper closes idle keep-alive
/// connections, so the only requests still answered are those already
/// arriving: a request whose headers were half sent when the drain began
/// is answered, and that is where `/-/ready` must say 503.
#[tokio::test]
async fn readiness_is_503_once_the_drain_begins_and_health_stays_200() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = start(HttpConfig::default()).await;
    assert_eq!(get(s.addr, "/-/ready").await.status, StatusCode::OK);

    // Half of each request (past HTTP/2 detection's 24 bytes) before the drain.
    let mut started = Vec::new();
    for path in ["/-/ready", "/-/health"] {
        let mut c = tokio::net::TcpStream::connect(s.addr).await.unwrap();
        c.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\n").as_bytes())
            .await
            .unwrap();
        started.push(c);
    }
    // A keep-alive connection that has finished one request and sits idle.
    let mut idle = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    idle.write_all(b"GET /-/ready HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 1024];
    let n = idle.read(&mut first).await.unwrap();
    assert!(
        first[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&first[..n])
    );
    tokio::time::sleep(Duration::from_millis(200)).await;

    s.begin_drain();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut answers = Vec::new();
    for mut c in started {
        c.write_all(b"connection: close\r\n\r\n").await.unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).await.unwrap();
        answers.push(out);
    }
    assert!(answers[0].starts_with("HTTP/1.1 503"), "{}", answers[0]);
    assert!(answers[0].ends_with(r#"{"status":"draining"}"#), "{}", answers[0]);
    assert!(answers[1].starts_with("HTTP/1.1 200"), "{}", answers[1]);
    assert!(answers[1].ends_with(r#"{"status":"ok"}"#), "{}", answers[1]);

    // The idle keep-alive connection was closed by the drain: a request
    // sent on it now gets no answer at all.
    let _ = idle.write_all(b"GET /-/ready HTTP/1.1\r\nhost: x\r\n\r\n").await;
    let mut rest = Vec::new();
    let _ = idle.read_to_end(&mut rest).await;
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    s.stop().await;
}

#[tokio::test]
async fn an_assemblyscript_guest_serves_http() {
    let s = start(HttpConfig::default()).await;
    let r = send(s.addr, Method::POST, "/as", &[], b"quiet").await;
    assert_eq!(r.text(), "QUIET!");
    s.stop().await;
}

#[tokio::test]
async fn steps_run_in_order_and_the_last_output_is_the_body() {
    let s = start(HttpConfig::default()).await;
    let r = get(s.addr, "/two/ada").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.text(), "Hello, ada!");
    s.stop().await;
}

#[tokio::test]
async fn many_concurrent_requests_all_succeed() {
    let s = start(HttpConfig::default()).await;
    let addr = s.addr;
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            tokio::spawn(async move {
                let body = format!("request {i}");
                let r = send(addr, Method::POST, "/echo/c", &[], body.as_bytes()).await;
                (r.status, r.text(), body)
            })
        })
        .collect();
    for t in tasks {
        let (status, text, body) = t.await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(text, body);
    }
    s.stop().await;
}
