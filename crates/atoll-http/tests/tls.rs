//! HTTPS on the listener: ALPN gives HTTP/2 or HTTP/1.1 with the
//! certificate configured, and clients that speak plain HTTP to it, or
//! say nothing, are turned away.

mod support;

use atoll_http::HttpConfig;
use atoll_testkit::{TestCa, guest_path, localhost_certificate};
use bytes::Bytes;
use http::{Request, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::TestServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// An app with one route echoing its body, served over HTTPS with a
/// certificate for `localhost` that `ca` signed.
async fn https_server(header_timeout: Duration) -> (TestServer, TestCa) {
    let plain = guest_path("wapc-plain").display().to_string().replace('\\', "/");
    let manifest = format!(
        r#"
[app]
name = "tls-test"

[functions.plain]
source = "{plain}"

[[routes]]
method = "POST"
path = "/echo"
steps = [{{ fn = "plain", op = "ping" }}]
"#
    );
    let files = tempfile::tempdir().unwrap();
    let (ca, cert, key) = localhost_certificate(files.path());
    let http = HttpConfig {
        tls: Some(atoll_http::tls_config(cert.as_ref(), key.as_ref()).unwrap()),
        header_timeout,
        ..HttpConfig::default()
    };
    (TestServer::sandbox_app(&manifest, 1 << 20, http).await, ca)
}

/// A TLS connection to `addr` as `localhost`, trusting `ca` only,
/// offering `alpn`.
async fn connect(addr: SocketAddr, ca: &TestCa, alpn: &[&[u8]]) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    tokio_rustls::TlsConnector::from(ca.client_config(alpn))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("a TLS handshake with the CA's certificate for localhost")
}

fn echo(body: &'static str) -> Request<Full<Bytes>> {
    Request::post("https://localhost/echo")
        .header("host", "localhost")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

#[tokio::test]
async fn https_speaks_http2_and_http1_as_alpn_chooses() {
    let (server, ca) = https_server(Duration::from_secs(30)).await;

    let tls = connect(server.addr, &ca, &[b"h2", b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut h2, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let reply = h2.send_request(echo("over h2")).await.unwrap();
    assert_eq!((reply.status(), reply.version()), (StatusCode::OK, Version::HTTP_2));
    assert_eq!(reply.into_body().collect().await.unwrap().to_bytes(), "over h2");

    let tls = connect(server.addr, &ca, &[b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (mut h1, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.unwrap();
    tokio::spawn(conn);
    let reply = h1.send_request(echo("over h1")).await.unwrap();
    assert_eq!((reply.status(), reply.version()), (StatusCode::OK, Version::HTTP_11));
    assert_eq!(reply.into_body().collect().await.unwrap().to_bytes(), "over h1");

    server.stop().await;
}

/// Reads until the server closes the connection (5 s at most), returning
/// what it sent.
async fn until_closed(stream: &mut (impl tokio::io::AsyncRead + Unpin)) -> Vec<u8> {
    let mut got = Vec::new();
    // A close without TLS's close_notify reads as an error: the bytes
    // before it are what counts.
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "the server kept the connection open");
    got
}

#[tokio::test]
async fn plain_http_and_silent_clients_are_turned_away() {
    let timeout = Duration::from_millis(500);
    let (server, ca) = https_server(timeout).await;

    // Plain HTTP to the HTTPS port gets no HTTP answer, only a TLS alert.
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET /-/health HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    let got = until_closed(&mut tcp).await;
    assert!(!got.starts_with(b"HTTP/"), "{}", String::from_utf8_lossy(&got));

    // A client that never starts its handshake is closed after the
    // header timeout, as on plain HTTP.
    let started = Instant::now();
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    assert!(until_closed(&mut tcp).await.is_empty());
    assert!(started.elapsed() >= timeout, "{:?}", started.elapsed());

    // So is one that completes it and then sends no request.
    let started = Instant::now();
    let mut tls = connect(server.addr, &ca, &[b"http/1.1"]).await;
    assert!(until_closed(&mut tls).await.is_empty());
    assert!(started.elapsed() >= timeout, "{:?}", started.elapsed());

    server.stop().await;
}
