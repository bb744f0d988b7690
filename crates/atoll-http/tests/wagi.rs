//! WAGI (CGI) functions end to end: a real server on loopback, a Rust
//! program built for wasm32-wasip1 and a C one built with clang and
//! wasi-libc, both from `tests/guests`.

mod support;

use atoll_http::HttpConfig;
use atoll_testkit::guest_path;
use http::{Method, StatusCode};
use std::time::{Duration, Instant};
use support::{Reply, TestServer, get, send};

/// Smaller than the default so the output limit is quick to reach.
const MAX_OUTPUT: usize = 64 << 10;

fn manifest() -> String {
    let p = |n: &str| guest_path(n).display().to_string().replace('\\', "/");
    format!(
        r#"
[app]
name = "wagi-test"

[variables]
greeting = {{ default = "hi" }}
token = {{ secret = true }}
hidden = {{ secret = true }}

[functions.cgi]
source = "{rust}"
abi = "wagi"
timeout = "500ms"
memory = "16MiB"
capabilities = ["log", "vars", "files"]
secrets = ["token"]

[functions.bare]
source = "{rust}"
abi = "wagi"

[functions.c]
source = "{c}"
abi = "wagi"

[functions.upper]
source = "{plain}"

[[routes]]
path = "/cgi/:user/*rest"
fn = "cgi"

[[routes]]
method = "GET"
path = "/bare"
fn = "bare"

[[routes]]
method = ["GET", "POST"]
path = "/c"
fn = "c"

[[routes]]
method = "POST"
path = "/chain"
steps = [{{ fn = "upper", op = "upper", as = "loud" }}, {{ fn = "cgi", input = "loud" }}]
"#,
        rust = p("wagi-rust"),
        c = p("wagi-c"),
        plain = p("wapc-plain"),
    )
}

async fn start() -> TestServer {
    TestServer::sandbox_app(&manifest(), MAX_OUTPUT, HttpConfig::default()).await
}

/// The echo mode's `env NAME=value` line for `name`.
fn env(reply: &Reply, name: &str) -> Option<String> {
    let prefix = format!("env {name}=");
    reply
        .text()
        .lines()
        .find_map(|l| l.strip_prefix(&prefix).map(str::to_string))
}

#[tokio::test]
async fn a_cgi_program_sees_the_request_as_cgi_variables_arguments_and_stdin() {
    let s = start().await;
    let r = send(
        s.addr,
        Method::POST,
        "/cgi/ann/a%20b/c.txt?echo&x=1",
        &[
            ("x-token", "abc"),
            ("content-type", "text/csv"),
            ("authorization", "Bearer no"),
        ],
        b"hello body",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    let text = r.text();
    assert!(text.contains("args=/cgi/ann/a%20b/c.txt|echo|x=1\n"), "{text}");
    assert!(text.ends_with("stdin=hello body"), "{text}");
    let expected = [
        ("REQUEST_METHOD", "POST"),
        ("GATEWAY_INTERFACE", "CGI/1.1"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("SCRIPT_NAME", "/cgi/ann"),
        ("PATH_INFO", "/a b/c.txt"),
        ("X_RAW_PATH_INFO", "/a%20b/c.txt"),
        ("X_MATCHED_ROUTE", "/cgi/:user/*rest"),
        ("X_PATH_MATCH_USER", "ann"),
        ("X_PATH_MATCH_REST", "a b/c.txt"),
        ("QUERY_STRING", "echo&x=1"),
        ("CONTENT_LENGTH", "10"),
        ("CONTENT_TYPE", "text/csv"),
        ("SERVER_NAME", "127.0.0.1"),
        ("SERVER_PORT", &s.addr.port().to_string()),
        ("X_FULL_URL", &format!("http://{}/cgi/ann/a%20b/c.txt?echo&x=1", s.addr)),
        ("HTTP_X_TOKEN", "abc"),
        // Granted variables, under their manifest names; a listed secret.
        ("greeting", "hi"),
        ("token", "s3cret"),
    ];
    for (name, value) in expected {
        assert_eq!(env(&r, name).as_deref(), Some(value), "{name} in:\n{text}");
    }
    // Credentials, unlisted secrets and the host's own environment stay out.
    for name in ["HTTP_AUTHORIZATION", "hidden", "PATH", "HOME", "CARGO"] {
        assert_eq!(env(&r, name), None, "{name} must not be set:\n{text}");
    }
    s.stop().await;
}

#[tokio::test]
async fn variables_and_static_files_need_their_grants() {
    let s = start().await;
    let r = get(s.addr, "/bare?echo").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(env(&r, "REQUEST_METHOD").as_deref(), Some("GET"));
    assert_eq!(env(&r, "greeting"), None, "{}", r.text());

    let granted = get(s.addr, "/cgi/ann/x?static").await;
    assert_eq!(granted.text(), "static: from static");
    let refused = get(s.addr, "/bare?static").await;
    assert!(refused.text().starts_with("no static: "), "{}", refused.text());
    s.stop().await;
}

#[tokio::test]
async fn status_headers_and_redirects_come_from_the_cgi_header_block() {
    let s = start().await;
    let r = get(s.addr, "/cgi/ann/x?status").await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.header("x-wagi"), Some("yes"));
    // The program's `Content-Length: 1` is dropped: the server frames the body.
    assert_eq!(r.header("content-length"), Some("7"));
    assert_eq!(r.text(), "created");

    let r = get(s.addr, "/cgi/ann/x?redirect").await;
    assert_eq!(r.status, StatusCode::FOUND);
    assert_eq!(r.header("location"), Some("/elsewhere"));
    s.stop().await;
}

#[tokio::test]
async fn malformed_or_missing_headers_are_a_500_naming_the_function() {
    let s = start().await;
    let r = get(s.addr, "/cgi/ann/x?noheader").await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    let e = r.json();
    assert_eq!(e["function"], "cgi");
    let msg = e["error"].as_str().unwrap();
    assert!(
        msg.contains("function \"cgi\" wrote no CGI header block: its output starts with \"just a body, no headers\""),
        "{msg}"
    );

    let r = get(s.addr, "/cgi/ann/x?garbage").await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    let msg = r.json()["error"].as_str().unwrap().to_string();
    assert!(
        msg.contains("line 2 of its CGI header block, \"this is not a header\""),
        "{msg}"
    );
    s.stop().await;
}

#[tokio::test]
async fn exits_traps_loops_bombs_and_floods_fail_only_their_request() {
    let s = start().await;
    let r = get(s.addr, "/cgi/ann/x?exit").await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    let msg = r.json()["error"].as_str().unwrap().to_string();
    assert!(
        msg.contains("exited with code 3") && msg.contains("giving up on purpose"),
        "{msg}"
    );

    let r = get(s.addr, "/cgi/ann/x?trap").await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    let msg = r.json()["error"].as_str().unwrap().to_string();
    assert!(msg.contains("trapped") && msg.contains("boom on purpose"), "{msg}");

    let started = Instant::now();
    let r = get(s.addr, "/cgi/ann/x?loop").await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT);
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());

    let r = get(s.addr, "/cgi/ann/x?bomb").await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    let msg = r.json()["error"].as_str().unwrap().to_string();
    assert!(msg.contains("memory limit of 16MiB"), "{msg}");

    let r = get(s.addr, &format!("/cgi/ann/x?big&{}", MAX_OUTPUT * 2)).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    let msg = r.json()["error"].as_str().unwrap().to_string();
    assert!(msg.contains(&format!("wrote more than {MAX_OUTPUT} bytes")), "{msg}");

    // The same function still answers: each request had its own instance.
    let r = get(s.addr, &format!("/cgi/ann/x?big&{}", MAX_OUTPUT / 2)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body.len(), MAX_OUTPUT / 2);
    s.stop().await;
}

#[tokio::test]
async fn a_c_program_built_with_wasi_libc_answers() {
    let s = start().await;
    let r = send(s.addr, Method::POST, "/c?a=1&b=2", &[], b"from the client").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.header("x-lang"), Some("c"));
    assert_eq!(
        r.text(),
        "hello from C\nmethod=POST\nquery=a=1&b=2\nstdin=from the client\n"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_cgi_program_is_a_pipeline_step_after_a_wapc_one() {
    let s = start().await;
    let r = send(s.addr, Method::POST, "/chain?echo", &[], b"quiet words").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let text = r.text();
    assert!(text.ends_with("stdin=QUIET WORDS"), "{text}");
    assert_eq!(env(&r, "CONTENT_LENGTH").as_deref(), Some("11"));
    assert_eq!(env(&r, "X_MATCHED_ROUTE").as_deref(), Some("/chain"));
    s.stop().await;
}
