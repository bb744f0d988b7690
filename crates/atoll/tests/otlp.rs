//! OTLP span export (`atoll serve --otlp-endpoint`), through the `atoll`
//! binary with real guests, to a collector on loopback: this test's own
//! HTTP server, which decodes each `ExportTraceServiceRequest` as a
//! collector does (no collector is packaged in Debian). It also answers
//! any other path as the upstream a function fetches, with the
//! `traceparent` it was sent.

mod common;

use atoll_testkit::{free_port, guest_path};
use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{Span, span::SpanKind, status::StatusCode};
use prost::Message;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the collector received: each span with its resource's attributes.
#[derive(Default)]
struct Received {
    spans: Vec<(Vec<KeyValue>, Span)>,
    /// Each export's `authorization` and `x-tenant` headers.
    headers: Vec<(String, String)>,
}

/// A collector on loopback: `POST /v1/traces` is decoded and kept;
/// `GET /hop...` is redirected to `/up`; any other request is answered
/// with the `traceparent` it carried.
struct Collector {
    addr: String,
    received: Arc<Mutex<Received>>,
}

impl Collector {
    fn start() -> Collector {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let received = Arc::new(Mutex::new(Received::default()));
        let kept = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let kept = kept.clone();
                std::thread::spawn(move || answer(stream.unwrap(), &kept));
            }
        });
        Collector { addr, received }
    }

    /// The spans received once `done` says they are all there (10 s at most).
    fn spans_when(&self, done: impl Fn(&[Span]) -> bool) -> Vec<(Vec<KeyValue>, Span)> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let received = self.received.lock().unwrap();
            let spans: Vec<Span> = received.spans.iter().map(|(_, s)| s.clone()).collect();
            if done(&spans) {
                return received.spans.clone();
            }
            assert!(Instant::now() < deadline, "the collector has only {spans:#?}");
            drop(received);
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// One HTTP/1.1 exchange, then the connection is closed.
fn answer(stream: TcpStream, received: &Mutex<Received>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    reader.read_line(&mut request_line).unwrap();
    let (mut length, mut traceparent) = (0, String::from("(none)"));
    let (mut authorization, mut tenant) = (String::new(), String::new());
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').unwrap();
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().unwrap(),
            "traceparent" => traceparent = value.trim().to_string(),
            "authorization" => authorization = value.trim().to_string(),
            "x-tenant" => tenant = value.trim().to_string(),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    let reply = if request_line.starts_with("GET /hop") {
        "HTTP/1.1 302 Found\r\nlocation: /up\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_string()
    } else if request_line.starts_with("POST /v1/traces ") {
        let export = ExportTraceServiceRequest::decode(body.as_slice()).expect("a valid ExportTraceServiceRequest");
        let mut received = received.lock().unwrap();
        received.headers.push((authorization, tenant));
        for resource_spans in export.resource_spans {
            let resource = resource_spans.resource.map(|r| r.attributes).unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    received.spans.push((resource.clone(), span));
                }
            }
        }
        // An empty ExportTraceServiceResponse is zero bytes.
        "HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            .to_string()
    } else {
        let text = format!("traceparent={traceparent}");
        format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
            text.len()
        )
    };
    let mut stream = stream;
    let _ = stream.write_all(reply.as_bytes());
}

/// An app whose `web` component fetches what it is told from `upstream`,
/// and whose `upper` waPC function runs as a two-step pipeline and as one
/// that fails.
fn app(dir: &Path, upstream: &str) -> PathBuf {
    app_with(dir, upstream, "")
}

/// `app` with `extra` at the end of its manifest.
fn app_with(dir: &Path, upstream: &str, extra: &str) -> PathBuf {
    let dir = dir.join("traced");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(guest_path("wasi-http-rust"), dir.join("web.wasm")).unwrap();
    std::fs::copy(guest_path("wapc-plain"), dir.join("plain.wasm")).unwrap();
    std::fs::write(
        dir.join("atoll.toml"),
        format!(
            r#"[app]
name = "traced"
version = "1.2.3"

[functions.web]
source = "web.wasm"
abi = "wasi-http"
capabilities = ["http"]
allowed_hosts = ["http://{upstream}"]

[functions.upper]
source = "plain.wasm"

[[routes]]
path = "/web/*rest"
fn = "web"

[[routes]]
method = "POST"
path = "/pipe"
steps = [{{ fn = "upper", op = "upper", as = "loud" }}, {{ fn = "upper", op = "upper", input = "loud" }}]

[[routes]]
path = "/fail"
steps = [{{ fn = "upper", op = "fail" }}]
{extra}"#
        ),
    )
    .unwrap();
    dir
}

fn attr<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v: &AnyValue| v.value.as_ref())
}

fn text(attributes: &[KeyValue], key: &str) -> String {
    match attr(attributes, key) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        other => panic!("{key} is {other:?} in {attributes:?}"),
    }
}

fn int(attributes: &[KeyValue], key: &str) -> i64 {
    match attr(attributes, key) {
        Some(any_value::Value::IntValue(n)) => *n,
        other => panic!("{key} is {other:?} in {attributes:?}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A client's trace through Atoll to the collector: the server span has
/// the client's trace id and span as its parent, its id is the parent in
/// the `traceparent` the function's outbound request carried, and each
/// invocation is its child; a pipeline's steps are two invocations; a
/// failure is an error; an unsampled trace and probes send nothing.
#[test]
fn spans_reach_the_collector_with_the_ids_atoll_propagates() {
    let collector = Collector::start();
    let tmp = tempfile::tempdir().unwrap();
    let endpoint = format!("http://{}", collector.addr);
    let mut served = serve_with(&app(tmp.path(), &collector.addr), &["--otlp-endpoint", &endpoint]);
    let addr = served.addr.clone();

    // Sent first, so they are exported first if at all.
    let unsampled = "00-11111111111111111111111111111111-2222222222222222-00";
    assert_eq!(
        status(&http(&addr, "POST", "/pipe", &[("traceparent", unsampled)], b"x")),
        200
    );
    assert_eq!(status(&http(&addr, "GET", "/-/health", &[], b"")), 200);

    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let client_span = "00f067aa0ba902b7";
    let incoming = format!("00-{trace}-{client_span}-01");
    let fetch = format!("/web/fetch?http://{}/up", collector.addr);
    let r = http(&addr, "GET", &fetch, &[("traceparent", &incoming)], b"");
    assert_eq!(status(&r), 200, "{r}");
    // A streamed component's body comes chunked.
    let sent = body(&r)
        .lines()
        .find_map(|l| l.strip_prefix("upstream 200: traceparent="))
        .unwrap_or_else(|| panic!("{r}"));
    assert!(sent.starts_with(&format!("00-{trace}-")), "{sent}");
    let sent_parent = &sent[36..52];

    let r = http(&addr, "POST", "/pipe", &[], b"hi");
    assert_eq!(body(&r), "HI", "{r}");
    let r = http(&addr, "GET", "/fail", &[], b"");
    assert_eq!(status(&r), 500, "{r}");

    // 3 server spans, 1 + 2 + 1 invocations, 1 outbound request.
    let received = collector.spans_when(|spans| spans.len() >= 8);
    let spans: Vec<&Span> = received.iter().map(|(_, s)| s).collect();
    assert_eq!(spans.len(), 8, "{spans:#?}");
    assert!(
        spans
            .iter()
            .all(|s| hex(&s.trace_id) != "11111111111111111111111111111111"),
        "an unsampled trace is not exported"
    );
    assert!(
        spans
            .iter()
            .all(|s| attr(&s.attributes, "url.path")
                .is_none_or(|p| *p != any_value::Value::StringValue("/-/health".into()))),
        "probes are not exported"
    );
    for (resource, _) in &received {
        assert_eq!(text(resource, "service.name"), "traced");
        assert_eq!(text(resource, "service.version"), "1.2.3");
    }

    // The fetch: the client's span -> Atoll's server span -> the
    // invocation -> its outbound request, whose span the upstream was sent.
    let server = spans
        .iter()
        .find(|s| hex(&s.trace_id) == trace && s.kind == SpanKind::Server as i32)
        .expect("the server span of the traced request");
    assert_eq!(hex(&server.parent_span_id), client_span);
    assert_eq!(server.name, "GET /web/*rest");
    assert_eq!(text(&server.attributes, "http.request.method"), "GET");
    assert_eq!(text(&server.attributes, "http.route"), "/web/*rest");
    assert_eq!(text(&server.attributes, "url.path"), "/web/fetch");
    assert_eq!(int(&server.attributes, "http.response.status_code"), 200);
    assert_eq!(text(&server.attributes, "atoll.app"), "traced");
    assert_ne!(server.status.as_ref().map(|s| s.code), Some(StatusCode::Error as i32));
    assert!(server.end_time_unix_nano >= server.start_time_unix_nano);
    let invocation = spans
        .iter()
        .find(|s| hex(&s.trace_id) == trace && s.kind == SpanKind::Internal as i32)
        .expect("the invocation span");
    assert_eq!(invocation.parent_span_id, server.span_id);
    assert_eq!(invocation.name, "invoke web");
    assert_eq!(text(&invocation.attributes, "atoll.function"), "web");
    assert_eq!(text(&invocation.attributes, "atoll.abi"), "wasi-http");
    assert_eq!(text(&invocation.attributes, "atoll.outcome"), "ok");
    assert!(invocation.start_time_unix_nano >= server.start_time_unix_nano);
    let outbound = spans
        .iter()
        .find(|s| hex(&s.trace_id) == trace && s.kind == SpanKind::Client as i32)
        .expect("the outbound request's client span");
    assert_eq!(outbound.parent_span_id, invocation.span_id);
    assert_eq!(
        hex(&outbound.span_id),
        sent_parent,
        "the span Atoll sent on as the parent"
    );

    // The pipeline: a new trace, its two steps under its server span.
    let pipe = spans
        .iter()
        .find(|s| s.name == "POST /pipe")
        .expect("the pipeline's server span");
    assert!(pipe.parent_span_id.is_empty(), "a trace Atoll started has no parent");
    let steps: Vec<_> = spans.iter().filter(|s| s.parent_span_id == pipe.span_id).collect();
    assert_eq!(steps.len(), 2, "{steps:#?}");
    for step in steps {
        assert_eq!(step.name, "invoke upper");
        assert_eq!(step.trace_id, pipe.trace_id);
        assert_eq!(text(&step.attributes, "atoll.op"), "upper");
    }

    // The failure: an error on both spans.
    let fail = spans
        .iter()
        .find(|s| s.name == "GET /fail")
        .expect("the failed request's span");
    assert_eq!(int(&fail.attributes, "http.response.status_code"), 500);
    assert_eq!(fail.status.as_ref().unwrap().code, StatusCode::Error as i32);
    assert_eq!(text(&fail.attributes, "error.type"), "500");
    let failed = spans.iter().find(|s| s.parent_span_id == fail.span_id).unwrap();
    assert_eq!(text(&failed.attributes, "atoll.outcome"), "error");
    let status = failed.status.as_ref().unwrap();
    assert_eq!(status.code, StatusCode::Error as i32);
    assert!(status.message.contains("fails on purpose"), "{status:?}");

    assert!(terminate(&mut served.child).success());
}

/// Every request a function sends is a client span under its invocation,
/// from waPC (the `http` namespace) and components (`outgoing-handler`)
/// alike, and the upstream is sent that span's id as its parent; a
/// redirect followed is one span per hop; a request the policy refuses (or
/// a component without the grant makes) is an error span saying why. No span holds the query string or an
/// `[[http_auth]]` header.
#[test]
fn outbound_requests_are_client_spans_under_their_invocation() {
    let collector = Collector::start();
    let tmp = tempfile::tempdir().unwrap();
    let upstream = &collector.addr;
    let extra = format!(
        r#"
[functions.f]
source = "f.wasm"
capabilities = ["http"]
allowed_hosts = ["http://{upstream}"]

[[routes]]
method = "POST"
path = "/call"
steps = [{{ fn = "f", op = "fetch" }}]

[functions.bare]
source = "web.wasm"
abi = "wasi-http"

[[routes]]
path = "/bare/*rest"
fn = "bare"

[[http_auth]]
hosts = ["http://{upstream}"]
headers = {{ "x-api-key" = "sekrit-key" }}
"#
    );
    let dir = app_with(tmp.path(), upstream, &extra);
    std::fs::copy(guest_path("caps-fixture"), dir.join("f.wasm")).unwrap();
    let endpoint = format!("http://{upstream}");
    let mut served = serve_with(&dir, &["--otlp-endpoint", &endpoint]);
    let addr = served.addr.clone();
    let traced = |n: u8| format!("00-{}-00f067aa0ba902b7-01", format!("{n:x}").repeat(32));
    let call = |n: u8, url: &str| {
        let body = serde_json::json!({ "url": url }).to_string();
        http(&addr, "POST", "/call", &[("traceparent", &traced(n))], body.as_bytes())
    };
    // What the upstream says it was sent, from the fixture's JSON answer.
    let sent_parent = |response: &str| -> String {
        let answer: serde_json::Value = serde_json::from_str(body(response)).unwrap_or_else(|_| panic!("{response}"));
        let sent = answer["body"].as_str().unwrap().strip_prefix("traceparent=").unwrap();
        sent[36..52].to_string()
    };

    let up = call(1, &format!("http://{upstream}/up?token=s3cret"));
    assert_eq!(status(&up), 200, "{up}");
    let hop = call(2, &format!("http://{upstream}/hop?token=s3cret"));
    assert_eq!(status(&hop), 200, "{hop}");
    let refused = call(3, "http://elsewhere.example/x?token=s3cret");
    assert_eq!(status(&refused), 500, "{refused}");
    let fetch = format!("/web/fetch?http://{upstream}/up?token=s3cret");
    let web = http(&addr, "GET", &fetch, &[("traceparent", &traced(4))], b"");
    let web_sent = body(&web)
        .lines()
        .find_map(|l| l.strip_prefix("upstream 200: traceparent="))
        .unwrap_or_else(|| panic!("{web}"))
        .to_string();
    let bare = format!("/bare/fetch?http://{upstream}/up");
    let ungranted = http(&addr, "GET", &bare, &[("traceparent", &traced(5))], b"");
    assert_eq!(status(&ungranted), 502, "{ungranted}");

    // Per trace: a server span, an invocation, and 1, 2, 1, 1, 1 client spans.
    let received = collector.spans_when(|spans| spans.len() >= 16);
    let spans: Vec<&Span> = received.iter().map(|(_, s)| s).collect();
    assert_eq!(spans.len(), 16, "{spans:#?}");
    let of = |n: u8| -> (Vec<&Span>, &Span) {
        let trace = format!("{n:x}").repeat(32);
        let mine: Vec<&Span> = spans.iter().copied().filter(|s| hex(&s.trace_id) == trace).collect();
        let server = mine.iter().find(|s| s.kind == SpanKind::Server as i32).unwrap();
        let invocation = mine
            .iter()
            .find(|s| s.kind == SpanKind::Internal as i32)
            .unwrap_or_else(|| panic!("trace {n}: {mine:#?}"));
        assert_eq!(invocation.parent_span_id, server.span_id);
        let clients: Vec<&Span> = mine
            .iter()
            .copied()
            .filter(|s| s.kind == SpanKind::Client as i32)
            .collect();
        for client in &clients {
            assert_eq!(client.parent_span_id, invocation.span_id, "under the invocation");
            assert!(client.start_time_unix_nano >= invocation.start_time_unix_nano);
        }
        (clients, invocation)
    };
    let port: i64 = upstream.rsplit_once(':').unwrap().1.parse().unwrap();

    // waPC, answered.
    let (clients, _) = of(1);
    assert_eq!(clients.len(), 1, "{clients:#?}");
    let client = clients[0];
    assert_eq!(
        hex(&client.span_id),
        sent_parent(&up),
        "the upstream's parent is the client span"
    );
    assert_eq!(client.name, "GET");
    assert_eq!(text(&client.attributes, "http.request.method"), "GET");
    assert_eq!(text(&client.attributes, "server.address"), "127.0.0.1");
    assert_eq!(int(&client.attributes, "server.port"), port);
    assert_eq!(text(&client.attributes, "url.full"), format!("http://{upstream}/up"));
    assert_eq!(int(&client.attributes, "http.response.status_code"), 200);
    assert_ne!(client.status.as_ref().map(|s| s.code), Some(StatusCode::Error as i32));

    // A redirect: a span for each request sent, the second a resend.
    let (clients, _) = of(2);
    assert_eq!(clients.len(), 2, "{clients:#?}");
    let first = clients
        .iter()
        .find(|s| attr(&s.attributes, "http.request.resend_count").is_none())
        .unwrap();
    let second = clients
        .iter()
        .find(|s| attr(&s.attributes, "http.request.resend_count").is_some())
        .unwrap();
    assert_eq!(text(&first.attributes, "url.full"), format!("http://{upstream}/hop"));
    assert_eq!(int(&first.attributes, "http.response.status_code"), 302);
    assert_eq!(text(&second.attributes, "url.full"), format!("http://{upstream}/up"));
    assert_eq!(int(&second.attributes, "http.request.resend_count"), 1);
    assert_eq!(int(&second.attributes, "http.response.status_code"), 200);
    assert_eq!(hex(&second.span_id), sent_parent(&hop), "each hop sends its own span");

    // Refused by the policy: an error that says why; nothing was sent.
    let (clients, invocation) = of(3);
    assert_eq!(clients.len(), 1, "{clients:#?}");
    let client = clients[0];
    assert_eq!(text(&client.attributes, "error.type"), "refused");
    assert_eq!(text(&client.attributes, "url.full"), "http://elsewhere.example/x");
    assert_eq!(text(&client.attributes, "server.address"), "elsewhere.example");
    assert!(attr(&client.attributes, "http.response.status_code").is_none());
    let why = client.status.as_ref().unwrap();
    assert_eq!(why.code, StatusCode::Error as i32);
    assert!(why.message.contains("allowed_hosts"), "{why:?}");
    assert_eq!(text(&invocation.attributes, "atoll.outcome"), "error");

    // A component's outgoing-handler, the same.
    let (clients, invocation) = of(4);
    assert_eq!(clients.len(), 1, "{clients:#?}");
    assert_eq!(text(&invocation.attributes, "atoll.abi"), "wasi-http");
    assert_eq!(web_sent[36..52], hex(&clients[0].span_id));
    assert_eq!(
        text(&clients[0].attributes, "url.full"),
        format!("http://{upstream}/up")
    );
    assert_eq!(int(&clients[0].attributes, "http.response.status_code"), 200);

    // A component without the grant: refused before any client is asked.
    let (clients, _) = of(5);
    assert_eq!(clients.len(), 1, "{clients:#?}");
    assert_eq!(text(&clients[0].attributes, "error.type"), "refused");
    let why = clients[0].status.as_ref().unwrap();
    assert!(why.message.contains("not granted outbound HTTP"), "{why:?}");

    // No secret anywhere: not the query's token, not the injected header.
    let everything = format!("{received:?}");
    assert!(!everything.contains("s3cret"), "{everything}");
    assert!(!everything.contains("sekrit"), "{everything}");
    assert!(terminate(&mut served.child).success());
}

/// The standard variables work as they do for any OpenTelemetry SDK: the
/// endpoint (with `/v1/traces` added) and headers, beside `--otlp-header`;
/// the service's name and the resource's attributes (percent-decoded),
/// over what Atoll takes from the app.
#[test]
fn the_standard_variables_configure_export() {
    let collector = Collector::start();
    let tmp = tempfile::tempdir().unwrap();
    let mut child = atoll()
        .arg("serve")
        .arg(app(tmp.path(), &collector.addr))
        .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
        .args(["--otlp-header", "authorization=Bearer sesame"])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{}", collector.addr))
        .env("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=blue")
        .env("OTEL_SERVICE_NAME", "checkout")
        .env(
            "OTEL_RESOURCE_ATTRIBUTES",
            "service.name=overridden, deployment.environment.name=prod,team=pay%2Cments,service.version=2.0",
        )
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = serving_address(&mut lines);
    std::thread::spawn(move || for _ in lines {});
    assert_eq!(body(&http(&addr, "POST", "/pipe", &[], b"hi")), "HI");
    let received = collector.spans_when(|spans| spans.iter().any(|s| s.name == "POST /pipe"));
    for (resource, _) in &received {
        assert_eq!(text(resource, "service.name"), "checkout", "OTEL_SERVICE_NAME wins");
        assert_eq!(text(resource, "deployment.environment.name"), "prod");
        assert_eq!(text(resource, "team"), "pay,ments", "percent-decoded");
        assert_eq!(
            text(resource, "service.version"),
            "2.0",
            "the variable wins over the app's"
        );
        assert_eq!(text(resource, "atoll.apps"), "traced", "Atoll's own stay");
        let names = resource.iter().filter(|kv| kv.key == "service.name").count();
        assert_eq!(names, 1, "{resource:?}");
    }
    let headers = collector.received.lock().unwrap().headers.clone();
    assert!(
        headers
            .iter()
            .all(|(auth, tenant)| auth == "Bearer sesame" && tenant == "blue"),
        "{headers:?}"
    );
    assert!(terminate(&mut child).success());
}

/// `OTEL_TRACES_SAMPLER`: a trace sampled out is not exported, yet its ids
/// go on to the upstream with the sampled flag cleared; a parent-based
/// sampler follows the caller's flag, a ratio decides on the trace id
/// alone, the same way for the same id.
#[test]
fn the_sampler_decides_what_is_exported_and_the_flag_says_so() {
    let collector = Collector::start();
    let tmp = tempfile::tempdir().unwrap();
    let dir = app(tmp.path(), &collector.addr);
    let serve = |sampler: &str, arg: &str| {
        let mut child = atoll()
            .arg("serve")
            .arg(&dir)
            .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
            .args(["--otlp-endpoint", &format!("http://{}", collector.addr)])
            .env("OTEL_TRACES_SAMPLER", sampler)
            .env("OTEL_TRACES_SAMPLER_ARG", arg)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let addr = serving_address(&mut lines);
        std::thread::spawn(move || for _ in lines {});
        (child, addr)
    };
    // What the upstream was sent: (trace id, sampled flag).
    let fetch = |addr: &str, traceparent: Option<&str>| -> (String, String) {
        let path = format!("/web/fetch?http://{}/up", collector.addr);
        let headers: Vec<(&str, &str)> = traceparent.iter().map(|t| ("traceparent", *t)).collect();
        let r = http(addr, "GET", &path, &headers, b"");
        let sent = body(&r)
            .lines()
            .find_map(|l| l.strip_prefix("upstream 200: traceparent="))
            .unwrap_or_else(|| panic!("{r}"))
            .to_string();
        (sent[3..35].to_string(), sent[53..55].to_string())
    };
    let exported = |trace: &str| {
        let spans = collector.received.lock().unwrap();
        spans.spans.iter().filter(|(_, s)| hex(&s.trace_id) == trace).count()
    };

    // Parent-based, roots at ratio 0: only what the caller sampled.
    let (mut child, addr) = serve("parentbased_traceidratio", "0");
    let (root, flag) = fetch(&addr, None);
    assert_eq!(flag, "00", "a root sampled out is sent on unsampled");
    let unsampled = "00-22222222222222222222222222222222-00f067aa0ba902b7-00";
    assert_eq!(fetch(&addr, Some(unsampled)), ("2".repeat(32), "00".into()));
    let sampled = "00-33333333333333333333333333333333-00f067aa0ba902b7-01";
    assert_eq!(fetch(&addr, Some(sampled)), ("3".repeat(32), "01".into()));
    // Sent last, so the others, had they been exported, would be in by now.
    collector.spans_when(|spans| spans.iter().filter(|s| hex(&s.trace_id) == "3".repeat(32)).count() >= 3);
    assert_eq!(exported(&root), 0);
    assert_eq!(exported(&"2".repeat(32)), 0);
    assert!(terminate(&mut child).success());

    // A ratio of one half, parent or not: the trace id's low half decides.
    let (mut child, addr) = serve("traceidratio", "0.5");
    let out = "00-4444444444444444ffffffffffffffff-00f067aa0ba902b7-01";
    assert_eq!(
        fetch(&addr, Some(out)),
        ("4444444444444444ffffffffffffffff".into(), "00".into()),
        "the caller's flag is not followed"
    );
    let kept = "00-55555555555555550000000000000001-00f067aa0ba902b7-00";
    assert_eq!(
        fetch(&addr, Some(kept)),
        ("55555555555555550000000000000001".into(), "01".into())
    );
    collector.spans_when(|spans| {
        spans
            .iter()
            .filter(|s| hex(&s.trace_id) == "55555555555555550000000000000001")
            .count()
            >= 3
    });
    assert_eq!(exported("4444444444444444ffffffffffffffff"), 0);
    assert!(terminate(&mut child).success());
}

/// A schedule's run is the root of a trace of its own, its step under it.
#[test]
fn a_schedule_run_is_a_root_span() {
    let collector = Collector::start();
    let tmp = tempfile::tempdir().unwrap();
    let schedule = r#"
[[schedules]]
name = "tick"
every = "200ms"
state = { word = "tock" }
steps = [{ fn = "upper", op = "upper", input = "word" }]
"#;
    let endpoint = format!("http://{}", collector.addr);
    let mut served = serve_with(
        &app_with(tmp.path(), &collector.addr, schedule),
        &["--otlp-endpoint", &endpoint],
    );
    let received = collector.spans_when(|spans| spans.iter().any(|s| s.name == "schedule tick"));
    let spans: Vec<&Span> = received.iter().map(|(_, s)| s).collect();
    let run = spans.iter().find(|s| s.name == "schedule tick").unwrap();
    assert!(run.parent_span_id.is_empty(), "a run starts its trace");
    assert_eq!(run.kind, SpanKind::Internal as i32);
    assert_eq!(text(&run.attributes, "atoll.schedule"), "tick");
    assert_eq!(text(&run.attributes, "atoll.app"), "traced");
    let step = spans
        .iter()
        .find(|s| s.parent_span_id == run.span_id)
        .unwrap_or_else(|| panic!("the run's step, exported with it: {spans:#?}"));
    assert_eq!(step.trace_id, run.trace_id);
    assert_eq!(step.name, "invoke upper");
    assert!(terminate(&mut served.child).success());
}

/// A linked call's invocation is the child of its caller's, so a trace
/// shows which function called which.
#[test]
fn a_linked_call_nests_under_its_callers_invocation() {
    let collector = Collector::start();
    let tmp = tempfile::tempdir().unwrap();
    let extra = r#"
[functions.caller]
source = "plain.wasm"
links = ["upper"]

[[routes]]
method = "POST"
path = "/linked"
steps = [{ fn = "caller", op = "host" }]
"#;
    let dir = app_with(tmp.path(), &collector.addr, extra);
    let endpoint = format!("http://{}", collector.addr);
    let mut served = serve_with(&dir, &["--otlp-endpoint", &endpoint]);
    // The fixture's `host` makes the host call its payload names.
    let r = http(&served.addr, "POST", "/linked", &[], b"upper:upper:hi");
    assert_eq!(body(&r), "HI", "{r}");
    let received = collector.spans_when(|spans| spans.len() >= 3);
    let spans: Vec<&Span> = received.iter().map(|(_, s)| s).collect();
    let named = |name: &str| {
        *spans
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no span {name}: {spans:#?}"))
    };
    let server = named("POST /linked");
    let caller = named("invoke caller");
    let callee = named("invoke upper");
    assert_eq!(caller.parent_span_id, server.span_id);
    assert_eq!(callee.parent_span_id, caller.span_id, "{spans:#?}");
    assert_eq!(callee.trace_id, server.trace_id);
    assert!(terminate(&mut served.child).success());
}

/// A waPC function that answers with a header value HTTP cannot carry
/// fails its request, and both its spans say so and why.
#[test]
fn a_response_header_the_guest_cannot_set_is_an_error_on_both_spans() {
    let collector = Collector::start();
    let tmp = tempfile::tempdir().unwrap();
    let extra = r#"
[functions.caps]
source = "caps.wasm"

[[routes]]
method = "POST"
path = "/tag"
steps = [{ fn = "caps", op = "tag" }]
"#;
    let dir = app_with(tmp.path(), &collector.addr, extra);
    std::fs::copy(guest_path("caps-fixture"), dir.join("caps.wasm")).unwrap();
    let endpoint = format!("http://{}", collector.addr);
    let mut served = serve_with(&dir, &["--otlp-endpoint", &endpoint]);
    // The fixture's `tag` puts its body in an `x-tag` header.
    let r = http(&served.addr, "POST", "/tag", &[], b"bad\x01value");
    assert_eq!(status(&r), 500, "{r}");
    let received = collector.spans_when(|spans| spans.len() >= 2);
    let spans: Vec<&Span> = received.iter().map(|(_, s)| s).collect();
    let server = spans
        .iter()
        .find(|s| s.name == "POST /tag")
        .unwrap_or_else(|| panic!("no server span: {spans:#?}"));
    assert_eq!(int(&server.attributes, "http.response.status_code"), 500);
    assert_eq!(server.status.as_ref().unwrap().code, StatusCode::Error as i32);
    let invocation = spans
        .iter()
        .find(|s| s.name == "invoke caps")
        .unwrap_or_else(|| panic!("no invocation span: {spans:#?}"));
    assert_eq!(invocation.parent_span_id, server.span_id);
    assert_eq!(text(&invocation.attributes, "atoll.outcome"), "error");
    let why = &invocation.status.as_ref().unwrap().message;
    assert!(why.contains("header \"x-tag\""), "{why}");
    assert!(terminate(&mut served.child).success());
}

/// A message taken from a subscription is the root of a trace of its own:
/// a consumer span, its step under it.
#[test]
fn a_subscription_message_is_a_consumer_root_span() {
    let collector = Collector::start();
    let tmp = tempfile::tempdir().unwrap();
    let extra = r#"
[functions.f]
source = "f.wasm"
capabilities = ["msg"]
publish_topics = ["jobs.*"]

[[routes]]
method = "POST"
path = "/publish"
steps = [{ fn = "f", op = "publish" }]

[[subscriptions]]
topic = "jobs.*"
steps = [{ fn = "upper", op = "upper" }]
"#;
    let dir = app_with(tmp.path(), &collector.addr, extra);
    std::fs::copy(guest_path("caps-fixture"), dir.join("f.wasm")).unwrap();
    let endpoint = format!("http://{}", collector.addr);
    let mut served = serve_with(&dir, &["--otlp-endpoint", &endpoint]);
    let job = r#"{"topic": "jobs.one", "payload": "hello"}"#;
    let r = http(&served.addr, "POST", "/publish", &[], job.as_bytes());
    assert_eq!(body(&r), "published", "{r}");
    let received = collector.spans_when(|spans| spans.iter().any(|s| s.name == "process jobs.one"));
    let spans: Vec<&Span> = received.iter().map(|(_, s)| s).collect();
    let message = spans.iter().find(|s| s.name == "process jobs.one").unwrap();
    assert_eq!(message.kind, SpanKind::Consumer as i32);
    assert!(message.parent_span_id.is_empty(), "a message starts its trace");
    assert_eq!(text(&message.attributes, "messaging.destination.name"), "jobs.one");
    assert_eq!(text(&message.attributes, "atoll.subscription"), "jobs.*");
    assert_eq!(int(&message.attributes, "messaging.body.size"), 5);
    let step = spans
        .iter()
        .find(|s| s.parent_span_id == message.span_id)
        .unwrap_or_else(|| panic!("the message's step: {spans:#?}"));
    assert_eq!(step.name, "invoke upper");
    assert_eq!(step.trace_id, message.trace_id);
    assert!(terminate(&mut served.child).success());
}

/// A collector that takes connections and never answers: every request is
/// answered at once all the same, shutdown gives up on the queued spans
/// within its bound, and the loss is logged.
#[test]
fn a_collector_that_hangs_slows_no_request() {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", silent.local_addr().unwrap());
    let held = Arc::new(Mutex::new(Vec::new()));
    let holder = held.clone();
    std::thread::spawn(move || {
        for stream in silent.incoming() {
            holder.lock().unwrap().push(stream.unwrap());
        }
    });
    let upstream = format!("127.0.0.1:{}", free_port());
    let tmp = tempfile::tempdir().unwrap();
    let (mut child, addr, lines) = start_serving(&app(tmp.path(), &upstream), &["--otlp-endpoint", &endpoint]);
    let log = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());

    let pipe = || assert_eq!(body(&http(&addr, "POST", "/pipe", &[], b"hi")), "HI");
    pipe();
    // The first batch goes within a second; the export then waits 5 s on
    // the collector.
    let deadline = Instant::now() + Duration::from_secs(10);
    while held.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "Atoll never tried the collector");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut slowest = Duration::ZERO;
    for _ in 0..100 {
        let started = Instant::now();
        pipe();
        slowest = slowest.max(started.elapsed());
    }
    // A request that waited on the export would take seconds.
    assert!(slowest < Duration::from_secs(1), "the slowest request took {slowest:?}");

    let stopping = Instant::now();
    assert!(terminate(&mut child).success());
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "shutdown waited {:?} for the collector",
        stopping.elapsed()
    );
    let log = log.join().unwrap();
    assert!(
        log.iter().any(|l| l.contains("were not all sent")),
        "the loss at shutdown is logged: {log:#?}"
    );
}

/// A collector that is down: requests are answered, and the spans lost are
/// counted in a warning (the first at once, then at most once a minute).
#[test]
fn a_collector_that_is_down_is_logged_once() {
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let upstream = format!("127.0.0.1:{}", free_port());
    let tmp = tempfile::tempdir().unwrap();
    let (mut child, addr, lines) = start_serving(&app(tmp.path(), &upstream), &["--otlp-endpoint", &endpoint]);
    let (tx, logged) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    for _ in 0..5 {
        assert_eq!(body(&http(&addr, "POST", "/pipe", &[], b"hi")), "HI");
    }
    // The exporter's retries take about a second before it gives up.
    let deadline = Instant::now() + Duration::from_secs(15);
    let warning = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = logged.recv_timeout(left).expect("a warning about the lost spans");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if v["target"] == "atoll::otlp" && v["level"] == "WARN" {
            break v;
        }
    };
    assert!(warning["dropped"].as_u64().unwrap() >= 3, "{warning}");
    assert!(
        warning["message"].as_str().unwrap().contains("not exported"),
        "{warning}"
    );
    // No second warning within the minute, however many more are lost.
    for _ in 0..5 {
        assert_eq!(body(&http(&addr, "POST", "/pipe", &[], b"hi")), "HI");
    }
    std::thread::sleep(Duration::from_secs(3));
    assert!(terminate(&mut child).success());
    let after: Vec<String> = logged.iter().collect();
    let warnings = after.iter().filter(|l| l.contains("spans were not exported")).count();
    assert!(warnings <= 1, "only the final count at shutdown: {after:#?}");
}

/// A bad endpoint or header is refused at start, naming the option.
#[test]
fn bad_otlp_options_are_refused_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = app(tmp.path(), "127.0.0.1:1");
    let (out, _, stderr) =
        run(atoll()
            .arg("serve")
            .arg(&dir)
            .args(["--listen", "127.0.0.1:0", "--otlp-endpoint", "localhost:4318"]));
    assert!(!out.status.success());
    assert!(
        stderr.contains("--otlp-endpoint") && stderr.contains("http://"),
        "{stderr}"
    );
    let (out, _, stderr) = run(atoll()
        .arg("serve")
        .arg(&dir)
        .args(["--listen", "127.0.0.1:0", "--otlp-endpoint", "http://127.0.0.1:4318"])
        .args(["--otlp-header", "no-equals-sign"]));
    assert!(!out.status.success());
    assert!(
        stderr.contains("--otlp-header") && stderr.contains("NAME=VALUE"),
        "{stderr}"
    );
    // A resource entry that cannot be read stops the start, named: spans
    // without the attributes the operator meant would be lost as surely.
    let (out, _, stderr) = run(atoll()
        .arg("serve")
        .arg(&dir)
        .args(["--listen", "127.0.0.1:0", "--otlp-endpoint", "http://127.0.0.1:4318"])
        .env("OTEL_RESOURCE_ATTRIBUTES", "team=pay,region"));
    assert!(!out.status.success());
    assert!(
        stderr.contains("OTEL_RESOURCE_ATTRIBUTES") && stderr.contains(r#"entry 2 ("region") is not key=value"#),
        "{stderr}"
    );
    let (out, _, stderr) = run(atoll()
        .arg("serve")
        .arg(&dir)
        .args(["--listen", "127.0.0.1:0", "--otlp-endpoint", "http://127.0.0.1:4318"])
        .env("OTEL_TRACES_SAMPLER", "traceidratio")
        .env("OTEL_TRACES_SAMPLER_ARG", "10%"));
    assert!(!out.status.success());
    assert!(
        stderr.contains("OTEL_TRACES_SAMPLER_ARG") && stderr.contains("not a ratio between 0 and 1"),
        "{stderr}"
    );
}
