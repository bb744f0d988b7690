//! `wasi:http/outgoing-handler` through the same client and policy as the
//! waPC `http` namespace ([`atoll_caps::http::OutboundHttp`]): the
//! function's `allowed_hosts`, the private-address rule, redirects checked
//! hop by hop, `[[http_auth]]` headers, timeouts and the response size
//! limit. A function without the `http` grant gets an error from `handle`
//! naming the grant, never a connection.
//!
//! Both bodies stream, at once: the request is sent as the component
//! writes its body and the response is handed over as soon as its head
//! arrives, so a component may read the upstream's answer while still
//! writing (an echo through an upstream, a long upload with early
//! replies). The one cost: a streamed body cannot be sent twice, so a 307
//! or 308 redirect of a request with a body comes back to the component
//! instead of being followed.

use atoll_caps::http::{Caller, OutboundHttp, ResponseBodyError, StreamingRequest};
use http_body_util::BodyExt;
use std::sync::Arc;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// One invocation's outbound HTTP: the function's client if granted.
pub(crate) struct Outbound {
    pub(crate) function: Arc<str>,
    pub(crate) client: Option<OutboundHttp>,
    /// The request the component serves, whose trace its requests carry on.
    pub(crate) request: Arc<atoll_caps::RequestInfo>,
    /// The invocation's span, when exported ([`atoll_caps::Invocation::span`]).
    pub(crate) span: Option<u64>,
}

type ResponseFuture = Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), Error>> + Send>;
type IoFuture = Box<dyn Future<Output = Result<(), Error>> + Send>;

impl WasiHttpHooks for Outbound {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: IoFuture,
    ) -> ResponseFuture {
        let function = self.function.clone();
        let client = self.client.clone();
        let incoming = self.request.clone();
        let span = self.span;
        Box::new(async move {
            use atoll_metrics::HostCallOutcome as O;
            let started = std::time::Instant::now();
            let caller = Caller {
                trace: incoming.trace.as_ref(),
                span,
            };
            let Some(client) = client else {
                atoll_metrics::host_call("http", O::Refused, started.elapsed());
                let why = format!(
                    "function \"{function}\" is not granted outbound HTTP: add \"http\" to its capabilities and the host to its allowed_hosts in atoll.toml"
                );
                caller.refused(request.method(), &request.uri().to_string(), &why);
                tracing::debug!(target: "atoll::http_out", function = &*function, "{why}");
                return Err(Error::InternalError(Some(why)));
            };
            let (parts, body) = request.into_parts();
            let timeout = options.and_then(|o| {
                [o.connect_timeout, o.first_byte_timeout, o.between_bytes_timeout]
                    .into_iter()
                    .flatten()
                    .max()
            });
            let sent = client
                .send_streaming(StreamingRequest {
                    method: parts.method,
                    url: parts.uri.to_string(),
                    headers: parts.headers,
                    body,
                    timeout,
                }, caller)
                .await
                .map_err(|why| {
                    atoll_metrics::host_call("http", O::Failed, started.elapsed());
                    tracing::debug!(target: "atoll::http_out", function = &*function, error = %why, "outbound request refused or failed");
                    Error::InternalError(Some(why))
                })?;
            // Counted when the response head is in, as its body streams on.
            atoll_metrics::host_call("http", O::Ok, started.elapsed());
            let body: WasiBody = sent
                .body
                .map_err(|e| match e {
                    ResponseBodyError::TooLarge(max) => Error::HttpResponseBodySize(Some(max)),
                    ResponseBodyError::TimedOut => Error::ConnectionReadTimeout,
                    ResponseBodyError::Failed(why) => Error::InternalError(Some(why)),
                })
                .boxed_unsync();
            let mut response = http::Response::new(body);
            *response.status_mut() = sent.status;
            *response.headers_mut() = sent.headers;
            Ok((response, Box::new(async { Ok(()) }) as IoFuture))
        })
    }
}
