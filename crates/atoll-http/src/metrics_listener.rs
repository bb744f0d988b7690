//! `GET /-/metrics` on an address of its own (`--metrics-listen`), so the
//! metrics need not be reachable where the app is public.

use crate::handler::metrics_reply;
use http::{Method, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::time::Duration;
use tokio::net::TcpListener;

/// Serves the metrics until `shutdown` completes. Anything but
/// `GET /-/metrics` is a 404.
pub async fn serve_metrics(listener: TcpListener, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::debug!(error = %e, "metrics listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => return Ok(()),
        };
        let service = hyper::service::service_fn(|req: http::Request<hyper::body::Incoming>| async move {
            let reply = if req.method() == Method::GET && req.uri().path() == "/-/metrics" {
                metrics_reply()
            } else {
                let mut r = Response::new(crate::body::ReplyBody::new(bytes::Bytes::from_static(
                    b"{\"error\":\"this address serves GET /-/metrics only\"}",
                )));
                *r.status_mut() = StatusCode::NOT_FOUND;
                r
            };
            Ok::<_, Infallible>(reply)
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(10))
            .serve_connection(TokioIo::new(stream), service);
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}
