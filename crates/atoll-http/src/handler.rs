//! One request, from bytes on the wire to a response and a log line.

use crate::body::ReplyBody;
use crate::router::Lookup;
use crate::server::Shared;
use atoll_runtime::{Outcome, RequestInfo, Trigger, TriggerKind, new_request_id};
use bytes::Bytes;
use http::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

pub(crate) const REQUEST_ID: &str = "x-request-id";

type Reply = Response<ReplyBody>;

/// Details for the request's log line.
#[derive(Default)]
struct Trace {
    route: Option<Arc<str>>,
    function: Option<String>,
    error: Option<String>,
}

pub(crate) async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Reply, Infallible> {
    let start = Instant::now();
    let request_id = request_id(&req);
    // Cloning the URI shares hyper's buffer; the log line needs the path.
    let (method, uri) = (req.method().clone(), req.uri().clone());
    let mut trace = Trace::default();
    let mut reply = respond(&shared, req, &request_id, &mut trace).await;
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        reply.headers_mut().insert(REQUEST_ID, v);
    }
    if method == Method::HEAD {
        reply.body_mut().clear();
    }
    tracing::info!(
        target: "atoll::http",
        request_id = %request_id,
        method = %method,
        path = uri.path(),
        status = reply.status().as_u16(),
        duration_us = start.elapsed().as_micros() as u64,
        route = trace.route.as_deref(),
        function = trace.function.as_deref(),
        error = trace.error.as_deref(),
        "request"
    );
    Ok(reply)
}

/// A client-supplied id is kept if it is short and plain (so it cannot
/// inject anything into logs); otherwise a new one is made.
fn request_id(req: &Request<Incoming>) -> String {
    req.headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        })
        .map(str::to_string)
        .unwrap_or_else(new_request_id)
}

async fn respond(shared: &Shared, req: Request<Incoming>, request_id: &str, trace: &mut Trace) -> Reply {
    let path = req.uri().path();
    if path == "/-/bundle"
        && let Some(admin) = shared.admin.get()
    {
        return deploy(admin, req, request_id, trace).await;
    }
    if let Some(reply) = operations(path, request_id) {
        return reply;
    }
    let served = shared.served.load_full();
    let (route_index, label, params) = match served.router.lookup(req.method().as_str(), path) {
        Lookup::Found { route, label, params } => (route, label, params),
        Lookup::NotFound => {
            return error(
                StatusCode::NOT_FOUND,
                &format!("no route for {} {path}", req.method()),
                None,
                request_id,
            );
        }
        Lookup::MethodNotAllowed { allow } => {
            let mut reply = error(
                StatusCode::METHOD_NOT_ALLOWED,
                &format!(
                    "{path} does not accept {}; it accepts {}",
                    req.method(),
                    allow.join(", ")
                ),
                None,
                request_id,
            );
            if let Ok(v) = HeaderValue::from_str(&allow.join(", ")) {
                reply.headers_mut().insert(ALLOW, v);
            }
            return reply;
        }
    };
    let route = &served.app.manifest.routes[route_index];
    trace.route = Some(label);

    // Shed load before buffering bodies: a full server answers at once.
    let Ok(_permit) = shared.permits.clone().try_acquire_owned() else {
        let mut reply = error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is at capacity; retry shortly",
            None,
            request_id,
        );
        reply.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("1"));
        trace.error = Some("at capacity".into());
        return reply;
    };

    let limit = route.max_body.unwrap_or(shared.config.max_body);
    let (parts, body) = req.into_parts();
    let body = match read_body(&parts, body, limit).await {
        Ok(b) => b,
        Err(reply) => return reply(request_id),
    };

    let request = RequestInfo {
        method: parts.method,
        uri: parts.uri,
        params: params
            .into_iter()
            .map(|(k, v)| {
                (
                    k,
                    percent_encoding::percent_decode_str(&v)
                        .decode_utf8_lossy()
                        .into_owned(),
                )
            })
            .collect(),
        headers: parts.headers,
        body,
        trigger: TriggerKind::Http,
    };
    let trigger = Trigger::new(request_id, request);
    let outcome = served.app.run(&route.pipeline, &trigger).await;
    reply_from(outcome, request_id, trace)
}

/// `PUT /-/bundle` with `Authorization: Bearer <token>`: loads the bundle
/// in the body fully, then swaps it in. A bad bundle is refused and the
/// current version keeps serving.
async fn deploy(
    admin: &crate::server::AdminEndpoint,
    req: Request<Incoming>,
    request_id: &str,
    trace: &mut Trace,
) -> Reply {
    trace.route = Some(Arc::from("PUT /-/bundle"));
    if req.method() != Method::PUT {
        let mut reply = error(
            StatusCode::METHOD_NOT_ALLOWED,
            "/-/bundle accepts PUT",
            None,
            request_id,
        );
        reply.headers_mut().insert(ALLOW, HeaderValue::from_static("PUT"));
        return reply;
    }
    let presented = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !constant_time_eq(presented.as_bytes(), admin.token.as_bytes()) {
        trace.error = Some("deploy refused: bad or missing token".into());
        let mut reply = error(
            StatusCode::UNAUTHORIZED,
            "a valid admin token is required",
            None,
            request_id,
        );
        reply
            .headers_mut()
            .insert(http::header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return reply;
    }
    let (parts, body) = req.into_parts();
    let bundle = match read_body(&parts, body, admin.max_bundle).await {
        Ok(b) => b,
        Err(reply) => return reply(request_id),
    };
    match admin.admin.deploy(bundle).await {
        Ok(summary) => json(StatusCode::OK, Bytes::from(summary.to_string())),
        Err(e) => {
            trace.error = Some(format!("deploy refused: {e}"));
            error(StatusCode::UNPROCESSABLE_ENTITY, &e, None, request_id)
        }
    }
}

/// Comparison whose time does not depend on where the inputs differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        diff |= (a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0)) as usize;
    }
    diff == 0
}

/// Atoll's own endpoints, under `/-/` (a prefix the manifest reserves).
fn operations(path: &str, request_id: &str) -> Option<Reply> {
    let body = match path {
        "/-/health" => r#"{"status":"ok"}"#,
        "/-/ready" => r#"{"status":"ready"}"#,
        p if p.starts_with("/-/") => {
            return Some(error(
                StatusCode::NOT_FOUND,
                &format!("no operations endpoint {p}"),
                None,
                request_id,
            ));
        }
        _ => return None,
    };
    Some(json(StatusCode::OK, body.into()))
}

type Deferred = Box<dyn FnOnce(&str) -> Reply + Send>;

async fn read_body(parts: &http::request::Parts, body: Incoming, limit: u64) -> Result<Bytes, Deferred> {
    let too_large = move |id: &str| {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("the request body is larger than this route's limit of {limit} bytes"),
            None,
            id,
        )
    };
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(Box::new(too_large));
    }
    match Limited::new(body, limit as usize).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(Box::new(too_large)),
        Err(e) => {
            let msg = format!("could not read the request body: {e}");
            Err(Box::new(move |id: &str| error(StatusCode::BAD_REQUEST, &msg, None, id)))
        }
    }
}

fn reply_from(outcome: Outcome, request_id: &str, trace: &mut Trace) -> Reply {
    let Outcome {
        result,
        response,
        spent,
    } = outcome;
    let failed = result.is_err();
    let mut reply = match result {
        Ok(body) => {
            let status = response
                .status
                .and_then(|s| StatusCode::from_u16(s).ok())
                .unwrap_or(StatusCode::OK);
            let mut reply = Response::new(ReplyBody::new(body));
            *reply.status_mut() = status;
            reply
        }
        Err(failure) => {
            let status = StatusCode::from_u16(failure.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            trace.function = Some(failure.function.clone());
            trace.error = Some(failure.message());
            error(status, &failure.message(), Some(&failure.function), request_id)
        }
    };
    for (name, value) in response.headers {
        // A failed call's JSON error keeps its own content type.
        if failed && name == CONTENT_TYPE {
            continue;
        }
        reply.headers_mut().append(name, value);
    }
    // The instances are torn down when hyper drops the body, after writing it.
    reply.body_mut().keep_until_sent(spent);
    reply
}

fn json(status: StatusCode, body: Bytes) -> Reply {
    let mut reply = Response::new(ReplyBody::new(body));
    *reply.status_mut() = status;
    reply
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    reply
}

/// `{"error": ..., "function": ..., "request_id": ...}`
fn error(status: StatusCode, message: &str, function: Option<&str>, request_id: &str) -> Reply {
    let mut body = serde_json::json!({ "error": message, "request_id": request_id });
    if let Some(f) = function {
        body["function"] = serde_json::Value::from(f);
    }
    json(status, Bytes::from(body.to_string()))
}
