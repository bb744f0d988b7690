//! One request, from bytes on the wire to a response and a log line.

use crate::HttpConfig;
use crate::body::ReplyBody;
use crate::budget::{Budget, Held};
use crate::router::Lookup;
use crate::server::Shared;
use crate::streamed_request::GuardedBody;
use atoll_caps::ResponseParts;
use atoll_caps::spans::{self, Began};
use atoll_caps::trace::TraceContext;
use atoll_runtime::{LoadedFunction, Outcome, RequestInfo, StepFailure, Trigger, TriggerKind, new_request_id};
use bytes::Bytes;
use http::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Body, Incoming};
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

pub(crate) const REQUEST_ID: &str = "x-request-id";

pub(crate) type Reply = Response<ReplyBody>;

/// Details for the request's log line.
pub(crate) struct Trace {
    /// The app the request went to, if any.
    pub(crate) app: Option<Arc<str>>,
    pub(crate) route: Option<Arc<str>>,
    function: Option<String>,
    pub(crate) error: Option<String>,
    /// The W3C trace the request continues or starts.
    context: TraceContext,
}

pub(crate) async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Reply, Infallible> {
    let start = Instant::now();
    let request_id = request_id(&req);
    // Cloning the URI shares hyper's buffer; the log line needs the path.
    let (method, uri) = (req.method().clone(), req.uri().clone());
    let mut trace = Trace {
        app: None,
        route: None,
        function: None,
        error: None,
        context: TraceContext::continue_or_start(req.headers()),
    };
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
        trace_id = %trace.context.trace_id(),
        method = %method,
        path = uri.path(),
        status = reply.status().as_u16(),
        duration_us = start.elapsed().as_micros() as u64,
        app = trace.app.as_deref(),
        route = trace.route.as_deref(),
        function = trace.function.as_deref(),
        error = trace.error.as_deref(),
        "request"
    );
    let route = match &trace.route {
        Some(route) => route,
        // Operations endpoints are a fixed set; anything else that matched
        // no route is one series, whatever its path.
        None if matches!(
            uri.path(),
            "/-/health" | "/-/ready" | "/-/metrics" | "/-/bundle" | "/-/apps"
        ) =>
        {
            uri.path()
        }
        None => "(no route)",
    };
    // Apps are the ones loaded, so the label stays bounded.
    let app = trace.app.as_deref().unwrap_or("(none)");
    atoll_metrics::http_request(app, route, method.as_str(), reply.status().as_u16(), start.elapsed());
    if spans::wanted(Some(&trace.context)) && !is_probe(uri.path()) {
        spans::record(server_span(&trace, &method, uri.path(), reply.status(), start));
    }
    Ok(reply)
}

/// Probes and scrapes come every few seconds and say nothing about the
/// app: no spans for them.
fn is_probe(path: &str) -> bool {
    matches!(path, "/-/health" | "/-/ready" | "/-/metrics")
}

/// The request's server span, named and described as the OpenTelemetry
/// HTTP conventions ask: `METHOD /route` (the method alone when no route
/// matched, so names stay few), an error only for 5xx (a 4xx is the
/// client's doing).
fn server_span(trace: &Trace, method: &Method, path: &str, status: StatusCode, start: Instant) -> spans::Span {
    // The label is `METHODS /pattern`; the pattern is the route.
    let route = trace.route.as_deref().map(|r| r.split_once(' ').map_or(r, |(_, p)| p));
    let name = match route {
        Some(route) => format!("{method} {route}"),
        None => method.to_string(),
    };
    let context = &trace.context;
    let mut span = Began::ago(start.elapsed()).until_now(context, context.span_id(), spans::SpanKind::Server, name);
    span.parent = context.parent_span_id().map(|p| (p, true));
    span.attributes
        .push(("http.request.method", method.as_str().to_string().into()));
    span.attributes.push(("url.path", path.to_string().into()));
    span.attributes
        .push(("http.response.status_code", i64::from(status.as_u16()).into()));
    if let Some(route) = route {
        span.attributes.push(("http.route", route.to_string().into()));
    }
    if let Some(app) = &trace.app {
        span.attributes.push(("atoll.app", app.clone().into()));
    }
    if let Some(function) = &trace.function {
        span.attributes.push(("atoll.function", function.clone().into()));
    }
    if status.is_server_error() {
        span.attributes.push(("error.type", status.as_str().to_string().into()));
        span.error = Some(trace.error.clone().unwrap_or_else(|| status.to_string()));
    }
    span
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
    if let Some(admin) = shared.admin.get() {
        if path == "/-/bundle" {
            return deploy(shared, admin, req, request_id, trace).await;
        }
        if path == "/-/apps" || path.starts_with("/-/apps/") {
            return crate::apps_admin::handle(shared, admin, req, request_id, trace).await;
        }
    }
    if let Some(reply) = operations(shared, path, request_id) {
        return reply;
    }
    let served = shared.served.load_full();
    let host = request_host(&req);
    // An app at the default mount takes every request; this is for apps
    // with a base or hosts, alone or not.
    let Some((mounted, inner)) = served.pick(&host, path) else {
        let host: String = host.chars().take(256).collect();
        let message = format!("no app is mounted for host \"{host}\" and path {path}");
        return error(StatusCode::NOT_FOUND, &message, None, request_id);
    };
    trace.app = Some(mounted.name.clone());
    let (route_index, label, params) = match mounted.router.lookup(req.method().as_str(), inner) {
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
    let route = &mounted.app.manifest.routes[route_index];
    trace.route = Some(label);

    // Shed load before reading bodies: a full server answers at once. The
    // permit itself is taken once the body is in, so clients that trickle
    // bodies cannot hold the server's capacity (`body_timeout` and
    // `min_body_rate` bound them, the body budget bounds their memory).
    if shared.permits.available_permits() == 0 {
        return at_capacity("the server is at capacity; retry shortly", request_id, trace);
    }
    let limit = route.max_body.unwrap_or(shared.config.max_body);
    if let Some(component) = mounted.app.streaming_component(&route.pipeline) {
        let component = component.clone();
        return stream_component(shared, &mounted.app, &component, req, params, limit, request_id, trace).await;
    }
    let (parts, body) = req.into_parts();
    let (body, held) = match read_body(&parts, body, limit, Some(&shared.budget), &shared.config).await {
        Ok(b) => b,
        Err(reply) => return reply(request_id, trace),
    };
    let Ok(permit) = shared.permits.clone().try_acquire_owned() else {
        return at_capacity("the server is at capacity; retry shortly", request_id, trace);
    };

    let trigger = Trigger::new(request_id, request_info(parts, params, body, trace.context.clone()));
    let outcome = mounted
        .app
        .run_in_lanes(move |m| &m.routes[route_index].pipeline, trigger)
        .await;
    drop((permit, held));
    reply_from(outcome, &shared.budget, request_id, trace)
}

/// What a function sees of the request; route parameters percent-decoded.
fn request_info(
    parts: http::request::Parts,
    params: Vec<(String, String)>,
    body: Bytes,
    trace: TraceContext,
) -> RequestInfo {
    RequestInfo {
        method: parts.method,
        uri: parts.uri,
        params: params
            .into_iter()
            .map(|(k, v)| {
                let v = percent_encoding::percent_decode_str(&v)
                    .decode_utf8_lossy()
                    .into_owned();
                (k, v)
            })
            .collect(),
        headers: parts.headers,
        body,
        trigger: TriggerKind::Http,
        trace: Some(trace),
    }
}

/// A route that is one component: its request body streams in and its
/// response out, so neither is held whole (nor counts against the body
/// budget); the concurrency permit is held until the response has gone.
#[allow(clippy::too_many_arguments)]
async fn stream_component(
    shared: &Shared,
    app: &atoll_runtime::App,
    component: &LoadedFunction,
    req: Request<Incoming>,
    params: Vec<(String, String)>,
    limit: u64,
    request_id: &str,
    trace: &mut Trace,
) -> Reply {
    if declares_more_than(req.headers(), limit) {
        return too_large(limit)(request_id, trace);
    }
    let Ok(permit) = shared.permits.clone().try_acquire_owned() else {
        return at_capacity("the server is at capacity; retry shortly", request_id, trace);
    };
    let (parts, body) = req.into_parts();
    let body = GuardedBody::new(body, limit, &shared.config);
    let trigger = Trigger::new(
        request_id,
        request_info(parts, params, Bytes::new(), trace.context.clone()),
    );
    match app.serve_component(component, trigger, body).await {
        Ok((streaming, slot)) => {
            let mut reply = Response::new(ReplyBody::streamed(streaming.body, permit, slot));
            *reply.status_mut() = streaming.status;
            *reply.headers_mut() = streaming.headers;
            reply
        }
        Err(failure) => failure_reply(&failure, request_id, trace),
    }
}

/// Why a request is refused when the body budget is spent.
const BODIES_FULL: &str = "the server holds as many request and response bodies as it may; retry shortly";

/// 503 with `Retry-After`.
fn at_capacity(message: &str, request_id: &str, trace: &mut Trace) -> Reply {
    let mut reply = error(StatusCode::SERVICE_UNAVAILABLE, message, None, request_id);
    reply.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("1"));
    trace.error = Some(message.into());
    reply
}

/// `PUT /-/bundle` with `Authorization: Bearer <token>`: loads the bundle
/// in the body fully, then swaps it in. A bad bundle is refused and the
/// current version keeps serving.
async fn deploy(
    shared: &Shared,
    admin: &crate::server::AdminEndpoint,
    req: Request<Incoming>,
    request_id: &str,
    trace: &mut Trace,
) -> Reply {
    trace.route = Some(Arc::from("PUT /-/bundle"));
    let config = &shared.config;
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
    if let Some(refused) = unauthorized(admin, &req, request_id, trace) {
        return refused;
    }
    if shared.several {
        let message = "this server hosts several apps: deploy one with PUT /-/apps/NAME";
        trace.error = Some(message.into());
        return error(StatusCode::CONFLICT, message, None, request_id);
    }
    let bundle = match read_bundle(admin, config, req).await {
        Ok(b) => b,
        Err(reply) => return reply(request_id, trace),
    };
    match admin.admin.deploy(bundle).await {
        Ok(summary) => json(StatusCode::OK, Bytes::from(summary.to_string())),
        Err(e) => {
            trace.error = Some(format!("deploy refused: {e}"));
            error(StatusCode::UNPROCESSABLE_ENTITY, &e, None, request_id)
        }
    }
}

/// 401 unless the request bears the admin token.
pub(crate) fn unauthorized(
    admin: &crate::server::AdminEndpoint,
    req: &Request<Incoming>,
    request_id: &str,
    trace: &mut Trace,
) -> Option<Reply> {
    let presented = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if constant_time_eq(presented.as_bytes(), admin.token.as_bytes()) {
        return None;
    }
    trace.error = Some("admin request refused: bad or missing token".into());
    let mut reply = error(
        StatusCode::UNAUTHORIZED,
        "a valid admin token is required",
        None,
        request_id,
    );
    reply
        .headers_mut()
        .insert(http::header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    Some(reply)
}

/// An uploaded bundle. An operator's upload, already authenticated: not
/// held to the body budget, which a bundle may be as large as.
pub(crate) async fn read_bundle(
    admin: &crate::server::AdminEndpoint,
    config: &HttpConfig,
    req: Request<Incoming>,
) -> Result<Bytes, Deferred> {
    let (parts, body) = req.into_parts();
    read_body(&parts, body, admin.max_bundle, None, config)
        .await
        .map(|(b, _)| b)
}

/// The host a request is for, as mounts compare it: HTTP/2's
/// `:authority`, else the `Host` header; empty if neither.
fn request_host(req: &Request<Incoming>) -> String {
    let authority = req
        .uri()
        .authority()
        .map(|a| a.as_str())
        .or_else(|| req.headers().get(http::header::HOST).and_then(|v| v.to_str().ok()));
    authority.map(atoll_manifest::host_of).unwrap_or_default()
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
/// `/-/health` is liveness: it answers 200 for as long as the process
/// answers at all. `/-/ready` also says 503 once a drain has begun, so a
/// client or balancer still holding a connection stops sending to this
/// process; one atomic load per probe.
fn operations(shared: &Shared, path: &str, request_id: &str) -> Option<Reply> {
    let body = match path {
        "/-/health" => r#"{"status":"ok"}"#,
        "/-/ready" if shared.draining.load(Ordering::Relaxed) => {
            return Some(json(StatusCode::SERVICE_UNAVAILABLE, r#"{"status":"draining"}"#.into()));
        }
        "/-/ready" => {
            let unreachable = shared.unreachable.read().unwrap_or_else(|e| e.into_inner());
            if !unreachable.is_empty() {
                let body = serde_json::json!({"status": "unavailable", "unreachable": *unreachable});
                return Some(json(StatusCode::SERVICE_UNAVAILABLE, body.to_string().into()));
            }
            r#"{"status":"ready"}"#
        }
        "/-/metrics" if shared.config.metrics_here && atoll_metrics::enabled() => return Some(metrics_reply()),
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

/// Everything recorded so far, for a Prometheus scrape.
pub(crate) fn metrics_reply() -> Reply {
    let mut reply = Response::new(ReplyBody::new(Bytes::from(atoll_metrics::render())));
    reply
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(atoll_metrics::CONTENT_TYPE));
    reply
}

/// A reply that still needs the request id, and what to log.
pub(crate) type Deferred = Box<dyn FnOnce(&str, &mut Trace) -> Reply + Send>;

fn refuse(status: StatusCode, message: String) -> Deferred {
    Box::new(move |id: &str, trace: &mut Trace| {
        if status == StatusCode::SERVICE_UNAVAILABLE {
            return at_capacity(&message, id, trace);
        }
        trace.error = Some(message.clone());
        error(status, &message, None, id)
    })
}

/// Whether the request's `Content-Length` says its body is over `limit`.
fn declares_more_than(headers: &http::HeaderMap, limit: u64) -> bool {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > limit)
}

/// Why a body over the route's limit is refused, whether read whole or
/// streamed.
pub(crate) fn too_large_message(limit: u64) -> String {
    format!("the request body is larger than this route's limit of {limit} bytes")
}

fn too_large(limit: u64) -> Deferred {
    refuse(StatusCode::PAYLOAD_TOO_LARGE, too_large_message(limit))
}

/// Reads a whole request body: at most `limit` bytes, each piece within
/// `body_timeout` of the last, and on average `min_body_rate` bytes a
/// second once `body_timeout` has passed. Bodies over 64 KiB are held
/// against `budget` until the returned share is dropped.
async fn read_body(
    parts: &http::request::Parts,
    mut body: Incoming,
    limit: u64,
    budget: Option<&Arc<Budget>>,
    config: &HttpConfig,
) -> Result<(Bytes, Option<Held>), Deferred> {
    if body.is_end_stream() {
        return Ok((Bytes::new(), None));
    }
    if declares_more_than(&parts.headers, limit) {
        return Err(too_large(limit));
    }
    let started = Instant::now();
    let mut pieces: Vec<Bytes> = Vec::new();
    let mut received: u64 = 0;
    let mut held = None;
    loop {
        let frame = match tokio::time::timeout(config.body_timeout, body.frame()).await {
            Ok(None) => break,
            Ok(Some(Ok(frame))) => frame,
            Ok(Some(Err(e))) => {
                return Err(refuse(
                    StatusCode::BAD_REQUEST,
                    format!("could not read the request body: {e}"),
                ));
            }
            Err(_) => {
                return Err(refuse(
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "the request body paused for more than {}s",
                        config.body_timeout.as_secs_f64()
                    ),
                ));
            }
        };
        let Ok(data) = frame.into_data() else { continue };
        received += data.len() as u64;
        if received > limit {
            return Err(too_large(limit));
        }
        if let Some(budget) = budget
            && !budget.grow(&mut held, received)
        {
            return Err(refuse(StatusCode::SERVICE_UNAVAILABLE, BODIES_FULL.into()));
        }
        let late = started.elapsed().saturating_sub(config.body_timeout);
        if (received as f64) < late.as_secs_f64() * config.min_body_rate as f64 {
            return Err(refuse(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body arrives slower than {} bytes a second",
                    config.min_body_rate
                ),
            ));
        }
        pieces.push(data);
    }
    let body = match pieces.len() {
        0 => Bytes::new(),
        1 => pieces.pop().expect("one piece"),
        _ => Bytes::from(pieces.concat()),
    };
    Ok((body, held))
}

/// Longest error text in a request's log line: the client gets the whole
/// message, the log a bounded one.
const LOGGED_ERROR: usize = 1024;

fn reply_from(outcome: Outcome, budget: &Arc<Budget>, request_id: &str, trace: &mut Trace) -> Reply {
    let Outcome {
        result,
        response,
        spent,
    } = outcome;
    let failed = result.is_err();
    let mut held = None;
    let mut reply = match result {
        Ok(body) if !budget.grow(&mut held, body.len() as u64) => {
            return at_capacity(BODIES_FULL, request_id, trace);
        }
        Ok(body) => {
            let status = response
                .status
                .and_then(|s| StatusCode::from_u16(s).ok())
                .unwrap_or(StatusCode::OK);
            let mut reply = Response::new(ReplyBody::new(body));
            *reply.status_mut() = status;
            reply
        }
        Err(failure) => failure_reply(&failure, request_id, trace),
    };
    for (name, value) in response.headers {
        // A failed call's JSON error keeps its own content type, and the
        // framing is the server's alone whatever an ABI let through.
        if (failed && name == CONTENT_TYPE) || ResponseParts::is_host_only(&name) {
            continue;
        }
        reply.headers_mut().append(name, value);
    }
    // The instances are torn down when hyper drops the body, after writing it.
    reply.body_mut().keep_until_sent(spent, held);
    reply
}

/// A failed step as the client sees it: its status, and the error as JSON.
/// A 503 (a function at its concurrency limit, the instance pool full)
/// says when to retry, as the server's own 503s do.
fn failure_reply(failure: &StepFailure, request_id: &str, trace: &mut Trace) -> Reply {
    let status = StatusCode::from_u16(failure.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let message = failure.message();
    trace.function = Some(failure.function.clone());
    trace.error = Some(truncated(&message, LOGGED_ERROR));
    let mut reply = error(status, &message, Some(&failure.function), request_id);
    if failure.is_overload() {
        reply.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    reply
}

/// `text` cut to at most `max` bytes on a character boundary, saying so.
fn truncated(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes cut)", &text[..end], text.len() - end)
}

pub(crate) fn json(status: StatusCode, body: Bytes) -> Reply {
    let mut reply = Response::new(ReplyBody::new(body));
    *reply.status_mut() = status;
    reply
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    reply
}

/// `{"error": ..., "function": ..., "request_id": ...}`
pub(crate) fn error(status: StatusCode, message: &str, function: Option<&str>, request_id: &str) -> Reply {
    let mut body = serde_json::json!({ "error": message, "request_id": request_id });
    if let Some(f) = function {
        body["function"] = serde_json::Value::from(f);
    }
    json(status, Bytes::from(body.to_string()))
}
