//! Shared helpers for the runtime's integration tests: apps built from
//! manifest text, a recording upstream HTTP server, and captured logs.

#![allow(dead_code)]

use atoll_runtime::{App, Engine, EngineConfig, RequestInfo, RuntimeConfig, StepFailure, Trigger};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

pub struct TestApp {
    pub app: Arc<App>,
    pub dir: tempfile::TempDir,
}

/// Writes `manifest` (with `{caps}` replaced by the capability fixture's
/// path) and optional static files into a temp dir, and loads it.
pub async fn load(manifest: &str, runtime: Option<&str>, files: &[(&str, &str)]) -> Result<TestApp, String> {
    let dir = tempfile::tempdir().unwrap();
    load_in(dir, manifest, runtime, files).await
}

pub async fn load_in(
    dir: tempfile::TempDir,
    manifest: &str,
    runtime: Option<&str>,
    files: &[(&str, &str)],
) -> Result<TestApp, String> {
    logs();
    let caps = atoll_testkit::guest_path("caps-fixture").display().to_string();
    std::fs::write(dir.path().join("atoll.toml"), manifest.replace("{caps}", &caps)).unwrap();
    for (path, content) in files {
        let p = dir.path().join("static").join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
    let mut config = RuntimeConfig::default();
    if let Some(rt) = runtime {
        let path = dir.path().join("runtime.toml");
        std::fs::write(&path, rt).unwrap();
        config.file = atoll_runtime::RuntimeConfigFile::load(&path).map_err(|e| e.to_string())?;
    }
    let app = Arc::new(
        App::load(dir.path(), &engine(), &config)
            .await
            .map_err(|e| e.to_string())?,
    );
    Ok(TestApp { app, dir })
}

pub fn engine() -> Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            Engine::new(EngineConfig {
                cache_dir: Some(atoll_testkit::shared_cache_dir()),
                max_instances: 64,
                ..EngineConfig::default()
            })
            .unwrap()
        })
        .clone()
}

impl TestApp {
    /// Calls `function`'s `op` with `payload`; the output as text.
    pub async fn call(&self, function: &str, op: &str, payload: &str) -> Result<String, StepFailure> {
        self.call_for(function, op, payload, RequestInfo::default()).await
    }

    /// As [`call`](Self::call), serving `request` (whose body is `payload`).
    pub async fn call_for(
        &self,
        function: &str,
        op: &str,
        payload: &str,
        request: RequestInfo,
    ) -> Result<String, StepFailure> {
        let trigger = Trigger::new(
            "test",
            RequestInfo {
                body: Bytes::copy_from_slice(payload.as_bytes()),
                ..request
            },
        );
        let (mut response, mut spent) = Default::default();
        self.app
            .call(
                function,
                op,
                Bytes::copy_from_slice(payload.as_bytes()),
                &trigger,
                &mut response,
                &mut spent,
            )
            .await
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    pub async fn json(
        &self,
        function: &str,
        op: &str,
        payload: serde_json::Value,
    ) -> Result<serde_json::Value, String> {
        match self.call(function, op, &payload.to_string()).await {
            Ok(out) => Ok(serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))),
            Err(f) => Err(f.message()),
        }
    }
}

/// Everything this test binary logged, for checks that secrets never appear:
/// every Atoll target in full, the rest (Cranelift traces!) at info.
pub fn logs() -> &'static Mutex<Vec<u8>> {
    atoll_testkit::capture_logs(
        "info,atoll=trace,atoll_caps=trace,atoll_runtime=trace,atoll_wapc=trace",
        false,
    )
}

pub fn logged() -> String {
    atoll_testkit::captured(logs())
}

/// What an upstream received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
}

/// An HTTP server on loopback that records every request and answers:
/// `/hello` → "hi"; `/redirect?to=URL` → 302; `/see-other?to=URL` → 303;
/// `/big` → 4 KiB; `/slow` → "late" after 2 s; anything else → "ok".
pub struct Upstream {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<Received>>>,
}

impl Upstream {
    pub async fn start() -> Upstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let log = received.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let log = log.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        let log = log.clone();
                        async move { Ok::<_, Infallible>(answer(req, &log).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Upstream { addr, received }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

async fn answer(req: Request<hyper::body::Incoming>, log: &Mutex<Vec<Received>>) -> Response<Full<Bytes>> {
    log.lock().unwrap().push(Received {
        method: req.method().to_string(),
        path: req.uri().path().to_string(),
        headers: req
            .headers()
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect(),
    });
    let query_to = req
        .uri()
        .query()
        .and_then(|q| q.strip_prefix("to="))
        .map(str::to_string);
    let (status, location, body): (u16, Option<String>, Bytes) = match req.uri().path() {
        "/hello" => (200, None, Bytes::from_static(b"hi")),
        "/redirect" => (302, query_to, Bytes::new()),
        "/see-other" => (303, query_to, Bytes::new()),
        "/big" => (200, None, Bytes::from(vec![b'x'; 4096])),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(2)).await;
            (200, None, Bytes::from_static(b"late"))
        }
        _ => (200, None, Bytes::from_static(b"ok")),
    };
    let mut resp = Response::builder().status(status);
    if let Some(l) = location {
        resp = resp.header("location", l);
    }
    resp.body(Full::new(body)).unwrap()
}
