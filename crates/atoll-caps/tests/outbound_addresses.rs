//! Ways a function might try to reach loopback without a grant, in one
//! table: other spellings of 127.0.0.1, IPv6 forms that embed it,
//! `localhost` variants, credentials in the URL, and redirects from an
//! allowed origin to a private one. Every row must be refused before any
//! connection is made; a new trick is one more row in `TRICKS`.
//!
//! The function may reach any public name (`http://*:*`) and exactly one
//! loopback origin, the "granted" server, which answers redirects. A second
//! server, never granted, counts what reaches it: it must see nothing.
//!
//! With spans exported, each refusal is also a client span with an error
//! saying so, and the credentials some rows put in the URL are in none.

use atoll_caps::http::{Caller, OutboundHttp, OutboundRequest};
use atoll_caps::spans::{self, Span, SpanKind, SpanSink, Value};
use atoll_manifest::{HostPattern, HttpSettings};
use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// How a row reaches its target.
enum Via {
    /// The function asks for the URL itself.
    Direct,
    /// The granted server answers with a redirect to the URL.
    Redirect,
}

/// What each refusal says, so a row cannot pass by failing some other way
/// (a refused connection, say).
const NON_PUBLIC: &str = "is a loopback, private or otherwise non-public address";
const LOCALHOST: &str = "resolves only to loopback, private or otherwise non-public addresses";
const CREDENTIALS: &str = "URLs with credentials are not allowed";

/// `{p}` is the port of the server nobody granted, `{g}` the granted one.
const TRICKS: &[(Via, &str, &str)] = &[
    // Other spellings of 127.0.0.1, which URL parsing turns into it.
    (Via::Direct, "http://127.1:{p}/", NON_PUBLIC),
    (Via::Direct, "http://0x7f000001:{p}/", NON_PUBLIC),
    (Via::Direct, "http://2130706433:{p}/", NON_PUBLIC),
    (Via::Direct, "http://017700000001:{p}/", NON_PUBLIC),
    (Via::Direct, "http://0177.0.0.1:{p}/", NON_PUBLIC),
    (Via::Direct, "http://127.0.0.2:{p}/", NON_PUBLIC),
    // IPv6: loopback, unspecified, and IPv4 loopback embedded.
    (Via::Direct, "http://[::1]:{p}/", NON_PUBLIC),
    (Via::Direct, "http://[0:0:0:0:0:0:0:1]:{p}/", NON_PUBLIC),
    (Via::Direct, "http://[::ffff:127.0.0.1]:{p}/", NON_PUBLIC),
    (Via::Direct, "http://[::ffff:7f00:1]:{p}/", NON_PUBLIC),
    (Via::Direct, "http://[::ffff:0:7f00:1]:{p}/", NON_PUBLIC),
    (Via::Direct, "http://[::ffff:0:127.0.0.1]:{p}/", NON_PUBLIC),
    (Via::Direct, "http://[::127.0.0.1]:{p}/", NON_PUBLIC),
    (Via::Direct, "http://[64:ff9b::127.0.0.1]:{p}/", NON_PUBLIC),
    // "This host" in both families.
    (Via::Direct, "http://0.0.0.0:{p}/", NON_PUBLIC),
    (Via::Direct, "http://0:{p}/", NON_PUBLIC),
    (Via::Direct, "http://[::]:{p}/", NON_PUBLIC),
    // Names for loopback.
    (Via::Direct, "http://localhost:{p}/", LOCALHOST),
    (Via::Direct, "http://localhost.:{p}/", LOCALHOST),
    (Via::Direct, "http://LOCALHOST:{p}/", LOCALHOST),
    (Via::Direct, "http://LocalHost.:{p}/", LOCALHOST),
    (Via::Direct, "http://api.localhost:{p}/", LOCALHOST),
    // Userinfo that makes the URL look like it goes somewhere else.
    (Via::Direct, "http://user:pass@127.0.0.1:{p}/", CREDENTIALS),
    (Via::Direct, "http://example.com@127.0.0.1:{p}/", CREDENTIALS),
    (Via::Direct, "http://user:pass@127.0.0.1:{g}/", CREDENTIALS),
    // Redirects from the granted origin: each hop is checked again.
    (Via::Redirect, "http://127.0.0.1:{p}/", NON_PUBLIC),
    (Via::Redirect, "//127.0.0.1:{p}/", NON_PUBLIC),
    (Via::Redirect, "http://127.1:{p}/", NON_PUBLIC),
    (Via::Redirect, "http://0x7f000001:{p}/", NON_PUBLIC),
    (Via::Redirect, "http://[::1]:{p}/", NON_PUBLIC),
    (Via::Redirect, "http://[::ffff:0:7f00:1]:{p}/", NON_PUBLIC),
    (Via::Redirect, "http://0.0.0.0:{p}/", NON_PUBLIC),
    (Via::Redirect, "http://localhost:{p}/", LOCALHOST),
    (Via::Redirect, "http://localhost:{g}/", LOCALHOST),
    (Via::Redirect, "http://user:pass@127.0.0.1:{g}/", CREDENTIALS),
];

/// A loopback server: `/r/<n>` redirects to the n-th location it was
/// given, anything else answers 200. It counts every request.
struct Server {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
}

impl Server {
    /// `locations` is told the server's own address, so a location can
    /// name the server itself.
    async fn start(locations: impl FnOnce(SocketAddr) -> Vec<String>) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let locations = locations(addr);
        let hits = Arc::new(AtomicUsize::new(0));
        let (counter, locations) = (hits.clone(), Arc::new(locations));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (counter, locations) = (counter.clone(), locations.clone());
                let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let target = req
                        .uri()
                        .path()
                        .strip_prefix("/r/")
                        .and_then(|n| n.parse::<usize>().ok())
                        .and_then(|n| locations.get(n).cloned());
                    let response = match target {
                        Some(to) => Response::builder().status(302).header("location", to),
                        None => Response::builder().status(200),
                    };
                    async move { Ok::<_, Infallible>(response.body(Full::new(Bytes::from_static(b"reached"))).unwrap()) }
                });
                tokio::spawn(async move {
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Server { addr, hits }
    }
}

/// Keeps every span recorded in this process.
struct Kept(Arc<Mutex<Vec<Span>>>);

impl SpanSink for Kept {
    fn record(&self, span: Span) {
        self.0.lock().unwrap().push(span);
    }
}

fn attribute<'a>(span: &'a Span, key: &str) -> Option<&'a Value> {
    span.attributes.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
}

fn get(url: String) -> OutboundRequest {
    OutboundRequest {
        method: Method::GET,
        url,
        headers: Vec::new(),
        body: Bytes::new(),
        timeout: None,
    }
}

#[tokio::test]
async fn address_tricks_are_refused_without_a_grant() {
    let forbidden = Server::start(|_| Vec::new()).await;
    let fill = |template: &str, granted: SocketAddr| {
        template
            .replace("{p}", &forbidden.addr.port().to_string())
            .replace("{g}", &granted.port().to_string())
    };
    let granted = Server::start(|me| {
        TRICKS
            .iter()
            .filter(|(via, ..)| matches!(via, Via::Redirect))
            .map(|(_, target, _)| fill(target, me))
            .chain([format!("http://{me}/landed")])
            .collect()
    })
    .await;
    let redirects = TRICKS.iter().filter(|(via, ..)| matches!(via, Via::Redirect)).count();
    let kept = Arc::new(Mutex::new(Vec::new()));
    assert!(
        spans::install(Box::new(Kept(kept.clone()))),
        "the first sink of this process"
    );
    let trace = atoll_caps::trace::TraceContext::start();
    let caller = Caller {
        trace: Some(&trace),
        span: Some(7),
    };
    let granted_port = granted.addr.port();

    let allowed = ["http://*:*".to_string(), format!("http://127.0.0.1:{granted_port}")];
    let client = OutboundHttp::new(
        allowed.iter().map(|p| HostPattern::parse(p).unwrap()).collect(),
        Vec::new(),
        HttpSettings::default(),
    )
    .unwrap();

    // The granted origin is reachable, directly and through a redirect to
    // itself, so the refusals below are the policy's and nothing else's.
    let ok = client
        .send(get(format!("http://127.0.0.1:{granted_port}/")), Default::default())
        .await
        .unwrap();
    assert_eq!((ok.status, &ok.body[..]), (200, &b"reached"[..]));
    let ok = client
        .send(
            get(format!("http://127.0.0.1:{granted_port}/r/{redirects}")),
            Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(ok.status, 200);

    let mut redirect = 0;
    let mut failures = Vec::new();
    for (via, target, expected) in TRICKS {
        let (url, row) = match via {
            Via::Direct => (fill(target, granted.addr), target.to_string()),
            Via::Redirect => {
                redirect += 1;
                let url = format!("http://127.0.0.1:{granted_port}/r/{}", redirect - 1);
                (url, format!("a redirect to {target}"))
            }
        };
        match client.send(get(url), caller).await {
            Ok(r) => failures.push(format!("{row}: reached, status {}", r.status)),
            Err(e) if !e.contains(expected) => failures.push(format!("{row}: refused for another reason: {e}")),
            Err(_) => {}
        }
    }
    assert!(
        failures.is_empty(),
        "tricks not refused by the policy:\n{}",
        failures.join("\n")
    );
    assert_eq!(
        forbidden.hits.load(Ordering::SeqCst),
        0,
        "nothing may reach the server nobody granted"
    );
    assert!(granted.hits.load(Ordering::SeqCst) > 0);

    let kept = kept.lock().unwrap();
    let refused: Vec<&Span> = kept
        .iter()
        .filter(|s| attribute(s, "error.type") == Some(&Value::Static("refused")))
        .collect();
    assert_eq!(refused.len(), TRICKS.len(), "{kept:#?}");
    for span in &refused {
        assert_eq!(span.kind, SpanKind::Client);
        assert_eq!(span.parent, Some((7, false)));
        assert!(span.error.as_deref().is_some_and(|e| !e.is_empty()));
    }
    let everything = format!("{kept:?}");
    assert!(
        !everything.contains("pass") && !everything.contains("example.com@"),
        "{everything}"
    );
}
