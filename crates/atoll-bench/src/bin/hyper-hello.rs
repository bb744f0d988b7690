//! A plain hyper hello-world server: the baseline Atoll's HTTP throughput is
//! measured against. Same hyper, hyper-util and tokio versions and the same
//! connection setup as Atoll's server (auto HTTP/1 + HTTP/2, TCP_NODELAY,
//! multi-threaded runtime), so the ratio isolates what Atoll adds.
//!
//! `hyper-hello 127.0.0.1:8080`

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::convert::Infallible;

#[tokio::main]
async fn main() {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8080".into());
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("binding");
    eprintln!("hyper-hello listening on http://{}", listener.local_addr().unwrap());
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(|_req: Request<hyper::body::Incoming>| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"Hello, world!"))))
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
