//! Streamed outbound requests (what wasi:http components send) against a
//! real loopback server: both bodies flow at once, redirects that need the
//! body again come back to the caller, and the response size limit holds
//! while streaming.

use atoll_caps::http::{OutboundHttp, ResponseBodyError, StreamingRequest};
use atoll_manifest::{HostPattern, HttpSettings};
use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// `/echo` streams the request body back as it arrives, `/307` and `/303`
/// redirect to `/echo`, `/big` answers 1 MiB. Every request is counted.
async fn upstream() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let counter = counter.clone();
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                counter.fetch_add(1, Ordering::SeqCst);
                let response = match req.uri().path() {
                    "/echo" => Response::new(req.into_body().boxed()),
                    "/307" | "/303" => Response::builder()
                        .status(req.uri().path()[1..].parse::<u16>().unwrap())
                        .header("location", "/echo")
                        .body(whole(Bytes::new()))
                        .unwrap(),
                    "/big" => Response::new(whole(vec![b'x'; 1 << 20].into())),
                    _ => Response::builder().status(404).body(whole(Bytes::new())).unwrap(),
                };
                async move { Ok::<_, Infallible>(response) }
            });
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, hits)
}

fn whole(bytes: Bytes) -> BoxBody<Bytes, hyper::Error> {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

/// A request body fed piece by piece from the test.
struct Pieces(mpsc::Receiver<Bytes>);

impl Body for Pieces {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|piece| piece.map(|p| Ok(Frame::data(p))))
    }
}

fn client(addr: SocketAddr, max_response: u64) -> OutboundHttp {
    let grant = HostPattern::parse(&format!("http://{addr}")).unwrap();
    let settings = HttpSettings {
        max_response,
        ..HttpSettings::default()
    };
    OutboundHttp::new(vec![grant], Vec::new(), settings).unwrap()
}

fn post(addr: SocketAddr, path: &str, body: Pieces) -> StreamingRequest<Pieces> {
    StreamingRequest {
        method: Method::POST,
        url: format!("http://{addr}{path}"),
        headers: HeaderMap::new(),
        body,
        timeout: None,
    }
}

#[tokio::test]
async fn both_bodies_flow_at_once() {
    let (addr, _) = upstream().await;
    let (tx, rx) = mpsc::channel(1);
    tx.send(Bytes::from_static(b"piece 0;")).await.unwrap();
    // The response head arrives while the request body is still open.
    let response = client(addr, 1 << 20)
        .send_streaming(post(addr, "/echo", Pieces(rx)), Default::default())
        .await
        .unwrap();
    assert_eq!(response.status, StatusCode::OK);
    let mut body = response.body;
    let mut echoed = Vec::new();
    for i in 0..20 {
        let piece = format!("piece {i};");
        if i > 0 {
            tx.send(piece.clone().into()).await.unwrap();
        }
        // Each piece comes back before the next is sent.
        while !echoed.ends_with(piece.as_bytes()) {
            let frame = body.frame().await.expect("the echo ended early").unwrap();
            echoed.extend_from_slice(&frame.into_data().unwrap());
        }
    }
    drop(tx);
    while let Some(frame) = body.frame().await {
        echoed.extend_from_slice(&frame.unwrap().into_data().unwrap());
    }
    let expected: String = (0..20).map(|i| format!("piece {i};")).collect();
    assert_eq!(String::from_utf8(echoed).unwrap(), expected);
}

#[tokio::test]
async fn a_redirect_that_needs_the_streamed_body_again_comes_back_to_the_caller() {
    let (addr, hits) = upstream().await;
    let (tx, rx) = mpsc::channel(1);
    tx.send(Bytes::from_static(b"once")).await.unwrap();
    drop(tx);
    let response = client(addr, 1 << 20)
        .send_streaming(post(addr, "/307", Pieces(rx)), Default::default())
        .await
        .unwrap();
    assert_eq!(response.status, StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(response.headers["location"], "/echo");
    assert_eq!(hits.load(Ordering::SeqCst), 1, "the redirect must not be followed");

    // 303 means "GET the other place", which needs no body: followed.
    let (tx, rx) = mpsc::channel(1);
    tx.send(Bytes::from_static(b"once")).await.unwrap();
    drop(tx);
    let response = client(addr, 1 << 20)
        .send_streaming(post(addr, "/303", Pieces(rx)), Default::default())
        .await
        .unwrap();
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(hits.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_streamed_response_stops_at_the_size_limit() {
    let (addr, _) = upstream().await;
    let (tx, rx) = mpsc::channel(1);
    drop(tx);
    // Known too large from its length: refused before any body is read.
    let refused = client(addr, 1000)
        .send_streaming(post(addr, "/big", Pieces(rx)), Default::default())
        .await;
    assert_eq!(
        refused.err().unwrap(),
        "the response is larger than the limit of 1000 bytes"
    );

    // A streamed echo has no length: it is cut where it passes the limit.
    let (tx, rx) = mpsc::channel(4);
    let response = client(addr, 1000)
        .send_streaming(post(addr, "/echo", Pieces(rx)), Default::default())
        .await
        .unwrap();
    let feeder = tokio::spawn(async move {
        for _ in 0..4 {
            if tx.send(Bytes::from(vec![b'y'; 600])).await.is_err() {
                break;
            }
        }
    });
    let mut body = response.body;
    let mut seen = 0;
    let error = loop {
        match body.frame().await {
            Some(Ok(frame)) => seen += frame.into_data().unwrap().len(),
            Some(Err(e)) => break e,
            None => panic!("the body ended after {seen} bytes without passing the limit"),
        }
    };
    assert_eq!(error, ResponseBodyError::TooLarge(1000));
    assert!(seen <= 1000, "{seen} bytes passed a 1000-byte limit");
    feeder.abort();
}
