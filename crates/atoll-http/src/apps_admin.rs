//! `/-/apps`, behind the admin token: `GET /-/apps` lists the apps served
//! with their mounts and versions, `PUT /-/apps/NAME` deploys a bundle as
//! the app NAME (added if new), `DELETE /-/apps/NAME` stops serving it.

use crate::handler::{Reply, Trace, error, json, read_bundle, unauthorized};
use crate::server::{AdminEndpoint, Shared};
use bytes::Bytes;
use http::header::{ALLOW, HeaderValue};
use http::{Method, Request, StatusCode};
use hyper::body::Incoming;
use std::sync::Arc;

pub(crate) async fn handle(
    shared: &Shared,
    admin: &AdminEndpoint,
    req: Request<Incoming>,
    request_id: &str,
    trace: &mut Trace,
) -> Reply {
    let name = req.uri().path().strip_prefix("/-/apps/").map(str::to_string);
    // A fixed label: the name in the path is the client's, not an app's.
    trace.route = Some(Arc::from(if name.is_some() { "/-/apps/{name}" } else { "/-/apps" }));
    // Before anything about the name is said, so no app can be probed.
    if let Some(refused) = unauthorized(admin, &req, request_id, trace) {
        return refused;
    }
    let Some(name) = name else {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return not_allowed("/-/apps accepts GET", "GET", request_id);
        }
        return json(StatusCode::OK, Bytes::from(list(shared).to_string()));
    };
    if !is_app_name(&name) {
        let shown: String = name.chars().take(64).collect();
        let message = format!(
            "\"{shown}\" is not an app name (letters, digits, - and _, at most 64 bytes; nothing percent-encoded)"
        );
        trace.error = Some(message.clone());
        return error(StatusCode::BAD_REQUEST, &message, None, request_id);
    }
    let done = match *req.method() {
        Method::GET | Method::HEAD => {
            return match list(shared)["apps"]
                .as_array()
                .and_then(|apps| apps.iter().find(|a| a["name"] == name.as_str()))
            {
                Some(app) => json(StatusCode::OK, Bytes::from(app.to_string())),
                None => error(
                    StatusCode::NOT_FOUND,
                    &format!("no app \"{name}\" is served"),
                    None,
                    request_id,
                ),
            };
        }
        Method::PUT => {
            let bundle = match read_bundle(admin, &shared.config, req).await {
                Ok(b) => b,
                Err(reply) => return reply(request_id, trace),
            };
            admin.admin.deploy_app(&name, bundle).await
        }
        Method::DELETE => admin.admin.remove_app(&name).await,
        _ => {
            return not_allowed(
                "/-/apps/NAME accepts GET, PUT and DELETE",
                "GET, PUT, DELETE",
                request_id,
            );
        }
    };
    match done {
        Ok(summary) => json(StatusCode::OK, Bytes::from(summary.to_string())),
        Err(refused) => {
            trace.error = Some(format!("refused: {}", refused.message));
            let status = StatusCode::from_u16(refused.status).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
            error(status, &refused.message, None, request_id)
        }
    }
}

/// `{"apps": [{"name", "version", "base", "hosts", "functions", "routes"}]}`, by name.
fn list(shared: &Shared) -> serde_json::Value {
    let served = shared.served.load();
    let apps: Vec<serde_json::Value> = served
        .apps
        .iter()
        .map(|m| {
            let manifest = &m.app.manifest;
            serde_json::json!({
                "name": &*m.name,
                "version": manifest.app.version,
                "base": m.mount.base,
                "hosts": m.mount.hosts,
                "functions": manifest.functions.len(),
                "routes": manifest.routes.len(),
            })
        })
        .collect();
    serde_json::json!({ "apps": apps })
}

/// The rule `[app] name` follows: letters, digits, `-` and `_`, at most 64.
fn is_app_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn not_allowed(message: &str, allow: &'static str, request_id: &str) -> Reply {
    let mut reply = error(StatusCode::METHOD_NOT_ALLOWED, message, None, request_id);
    reply.headers_mut().insert(ALLOW, HeaderValue::from_static(allow));
    reply
}
