//! What the HTTP trigger's test binaries share: an app served on loopback
//! for one test (the sandbox apps of the WAGI and component tests alike:
//! a `static/hello.txt`, two secret variables), a client whose replies
//! keep status, headers and body, and the log captured as JSON lines.

#![allow(dead_code)]

use atoll_http::{HttpConfig, HttpServer};
use atoll_runtime::{App, Engine, EngineConfig, RuntimeConfig};
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use std::sync::Arc;

pub struct TestServer {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    /// Serves `app` (loaded from `dir`, kept alive with the server) on a
    /// free loopback port until [`TestServer::stop`].
    pub async fn serve(app: App, config: HttpConfig, dir: tempfile::TempDir) -> TestServer {
        let server = HttpServer::new(Arc::new(app), config).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server
                .serve(listener, async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        TestServer {
            addr,
            stop: Some(tx),
            task,
            _dir: dir,
        }
    }

    /// Completes the server's shutdown future, as SIGTERM does in `atoll
    /// serve`: the drain begins, and the server keeps running until its
    /// connections finish (see [`TestServer::stop`]).
    pub fn begin_drain(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }

    pub async fn stop(mut self) {
        self.begin_drain();
        self.task.await.unwrap();
    }
}

impl TestServer {
    /// Serves `manifest` from a fresh directory holding `static/hello.txt`
    /// ("from static"), with the variables `token` ("s3cret") and `hidden`
    /// ("never-shown") set by the runtime configuration and at most
    /// `max_output` bytes of output per function.
    pub async fn sandbox_app(manifest: &str, max_output: usize, http: HttpConfig) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("atoll.toml"), manifest).unwrap();
        std::fs::create_dir_all(dir.path().join("static")).unwrap();
        std::fs::write(dir.path().join("static/hello.txt"), "from static").unwrap();
        let engine = Engine::new(EngineConfig {
            cache_dir: Some(atoll_testkit::shared_cache_dir()),
            max_instances: 64,
            ..EngineConfig::default()
        })
        .unwrap();
        let mut config = RuntimeConfig {
            max_output,
            ..RuntimeConfig::default()
        };
        config.file.variables.insert("token".into(), "s3cret".into());
        config.file.variables.insert("hidden".into(), "never-shown".into());
        let app = App::load(dir.path(), &engine, &config)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        TestServer::serve(app, http, dir).await
    }
}

/// Everything this test binary logs from now on, as JSON lines (Atoll's
/// targets at every level, the rest at warn).
pub fn capture_logs() {
    atoll_testkit::capture_logs("warn,atoll=trace", false);
}

/// What was logged since [`capture_logs`].
pub fn logged() -> String {
    atoll_testkit::captured(atoll_testkit::capture_logs("warn,atoll=trace", false))
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

pub async fn send(addr: SocketAddr, method: Method, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut req = Request::builder().method(method).uri(format!("http://{addr}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = client
        .request(req.body(Full::new(Bytes::copy_from_slice(body))).unwrap())
        .await
        .unwrap();
    let (parts, body) = resp.into_parts();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

pub async fn get(addr: SocketAddr, path: &str) -> Reply {
    send(addr, Method::GET, path, &[], b"").await
}
