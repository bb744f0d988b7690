//! `serve --ready-requires-backends`: the remote backends the runtime
//! configuration names are probed every few seconds, and `/-/ready` answers
//! 503 naming the ones that do not answer, until they do.

use atoll_caps::reachable::RemoteBackend;
use atoll_http::HttpServer;
use atoll_manifest::without_password;
use std::time::Duration;

/// How often the backends are asked, and how long each may take.
pub const EVERY: Duration = Duration::from_secs(2);
const WITHIN: Duration = Duration::from_secs(1);

/// Probes once now, so the server is never "ready" before the first
/// answer, then keeps probing in the background.
pub async fn follow(server: HttpServer, backends: Vec<RemoteBackend>) {
    if backends.is_empty() {
        tracing::info!(
            "--ready-requires-backends: the runtime configuration names no remote backend; /-/ready follows only the drain"
        );
        return;
    }
    let names: Vec<&str> = backends.iter().map(|b| b.name.as_str()).collect();
    tracing::info!(backends = %names.join(", "), every_s = EVERY.as_secs(), "/-/ready follows these backends");
    let mut down = probe(&server, &backends, &[]).await;
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(EVERY).await;
            down = probe(&server, &backends, &down).await;
        }
    });
}

/// Asks every backend and tells the server which did not answer; logs
/// each change. Returns the names of those down.
async fn probe(server: &HttpServer, backends: &[RemoteBackend], was_down: &[String]) -> Vec<String> {
    let mut unreachable = Vec::new();
    let mut down = Vec::new();
    for backend in backends {
        let at = without_password(backend.url());
        match backend.answers(WITHIN).await {
            Ok(()) => {
                if was_down.contains(&backend.name) {
                    tracing::info!(backend = %backend.name, at = %at, "backend answers again; /-/ready follows");
                }
            }
            Err(why) => {
                if !was_down.contains(&backend.name) {
                    tracing::warn!(backend = %backend.name, at = %at, error = %why, "backend unreachable: /-/ready answers 503 until it answers");
                }
                unreachable.push(format!("{} ({at}): {why}", backend.name));
                down.push(backend.name.clone());
            }
        }
    }
    server.set_unreachable(unreachable);
    down
}
