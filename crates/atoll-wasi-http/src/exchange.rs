//! The HTTP exchange with one component instance: the request it is
//! handed, and its response read back within the host's limits.

use atoll_caps::{RequestInfo, ResponseParts, TriggerKind};
use bytes::Bytes;
use http::{HeaderValue, Uri};
use http_body_util::{BodyExt, Full, Limited};
use tokio::sync::oneshot;
use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// What the component's `response-outparam` receives.
pub(crate) type Outparam = Result<hyper::Response<HyperOutgoingBody>, ErrorCode>;

/// The request as the component sees it: the trigger's method, path,
/// query and headers with `payload` as the body. Its authority is the
/// request's `Host` (or `localhost`). Forbidden headers (`host`,
/// `connection`, ...) are removed by wasi-http itself before the component
/// can see them, as `wasmtime serve` does. A schedule or a message has no
/// request line: it arrives as `POST /` with its payload as the body and
/// `x-atoll-trigger` (`schedule` or `message`) and `x-atoll-source` (the
/// schedule's name or the topic) as headers, as WAGI programs get them.
pub(crate) fn request(info: &RequestInfo, payload: Bytes) -> http::Request<Full<Bytes>> {
    let length = HeaderValue::from(payload.len());
    let mut request = with_body(info, Full::new(payload));
    // In a pipeline the payload is an earlier step's output, not the
    // client's body: its length is the one that holds.
    request.headers_mut().insert(http::header::CONTENT_LENGTH, length);
    request
}

/// [`with_body`], moving the headers out of `info` when nothing else holds
/// it (a streamed request: the component is its only reader) instead of
/// copying them.
pub(crate) fn taking_headers<B>(info: &mut std::sync::Arc<RequestInfo>, body: B) -> http::Request<B> {
    let headers = match std::sync::Arc::get_mut(info) {
        Some(only) if only.trigger == TriggerKind::Http => Some(std::mem::take(&mut only.headers)),
        _ => None,
    };
    match headers {
        Some(headers) => {
            let mut request = with_body_and(info, body, &headers);
            *request.headers_mut() = headers;
            request
        }
        None => with_body(info, body),
    }
}

/// [`request`] with any body, streamed to the component as it arrives.
pub(crate) fn with_body<B>(info: &RequestInfo, body: B) -> http::Request<B> {
    let mut request = with_body_and(info, body, &info.headers);
    if info.trigger == TriggerKind::Http {
        *request.headers_mut() = info.headers.clone();
    }
    request
}

/// The request line (and, for schedules and messages, the trigger's
/// headers); the authority from `headers`' `Host`.
fn with_body_and<B>(info: &RequestInfo, body: B, headers: &http::HeaderMap) -> http::Request<B> {
    let mut request = http::Request::new(body);
    let (kind, source) = match &info.trigger {
        TriggerKind::Http => {
            let authority = headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .filter(|h| h.parse::<http::uri::Authority>().is_ok())
                .unwrap_or("localhost");
            let path = info.uri.path_and_query().map_or("/", |p| p.as_str());
            *request.uri_mut() = Uri::builder()
                .scheme("http")
                .authority(authority)
                .path_and_query(path)
                .build()
                .unwrap_or_else(|_| Uri::from_static("http://localhost/"));
            *request.method_mut() = info.method.clone();
            return request;
        }
        TriggerKind::Schedule { name } => ("schedule", name),
        TriggerKind::Message { topic } => ("message", topic),
    };
    *request.uri_mut() = Uri::from_static("http://localhost/");
    *request.method_mut() = http::Method::POST;
    let headers = request.headers_mut();
    headers.insert("x-atoll-trigger", HeaderValue::from_static(kind));
    if let Ok(source) = HeaderValue::from_str(source) {
        headers.insert("x-atoll-source", source);
    }
    request
}

/// Waits for the component's response and reads its body, at most
/// `max_output` bytes, into `parts` and the returned body. The body is
/// read while the component writes it, so this runs beside the guest.
pub(crate) async fn response(
    answer: oneshot::Receiver<Outparam>,
    max_output: usize,
    parts: &mut ResponseParts,
) -> Result<Vec<u8>, String> {
    let response = match answer.await {
        Ok(Ok(response)) => response,
        Ok(Err(code)) => return Err(format!("answered with the error {code:?}")),
        Err(_) => return Err("returned without setting a response".into()),
    };
    let (head, body) = response.into_parts();
    parts.status = Some(head.status.as_u16());
    for (name, value) in head.headers {
        let Some(name) = name else { continue };
        // A component's own framing headers are the server's to write.
        if ResponseParts::is_host_only(&name) {
            continue;
        }
        parts
            .append_header(name, value)
            .map_err(|e| format!("set too many headers: {e}"))?;
    }
    let body = Limited::new(body, max_output).collect().await.map_err(|e| {
        if e.is::<http_body_util::LengthLimitError>() {
            format!("wrote a response body larger than the server's limit of {max_output} bytes")
        } else {
            format!("failed while writing its response body: {e}")
        }
    })?;
    Ok(body.to_bytes().to_vec())
}
