//! A guest's outbound request as client spans, one per request sent
//! (each redirect followed is one more, as the HTTP semantic conventions
//! ask), the children of the invocation's span, each hop's `traceparent`
//! naming its own span so the upstream's server span nests under it.
//!
//! Built only when the invocation's span is exported ([`Caller::span`]):
//! otherwise the request carries the request's trace as it always did and
//! nothing here allocates. The span records the method, the upstream's
//! address and port, the URL without its query string or fragment (where
//! tokens live), and the status; never a header, so the `[[http_auth]]`
//! headers Atoll adds cannot reach the collector.

use crate::spans::{self, Began, SpanKind};
use crate::trace::{TraceContext, new_span_id};
use http::{HeaderMap, Method};
use reqwest::Url;

/// The trace an outbound request is made in.
#[derive(Debug, Clone, Copy, Default)]
pub struct Caller<'a> {
    /// The request's trace, carried on in `traceparent` (unless the
    /// guest set its own).
    pub trace: Option<&'a TraceContext>,
    /// The invocation's span, set only when its trace is exported: the
    /// parent of the client spans.
    pub span: Option<u64>,
}

impl<'a> Caller<'a> {
    /// The client span of one hop, if spans of this trace are exported.
    pub(super) fn begin(&self, method: &Method, url: Option<&Url>, resend: u32) -> Option<ClientSpan<'a>> {
        let (trace, parent) = (self.trace?, self.span?);
        Some(ClientSpan {
            trace,
            id: new_span_id(),
            parent,
            began: Began::now(),
            attributes: attributes(method, url, resend),
            name: method.to_string(),
        })
    }

    /// Records a request refused before Atoll's client saw it (a
    /// component without the `http` grant), if spans are exported.
    pub fn refused(&self, method: &Method, url: &str, why: &str) {
        if let Some(span) = self.begin(method, Url::parse(url).ok().as_ref(), 0) {
            span.failed(FailureKind::Refused, None, why);
        }
    }

    /// Adds `traceparent` (naming `span` if there is one, else the
    /// request's span) and `tracestate`, unless the guest set its own.
    pub(super) fn inject(&self, span: Option<&ClientSpan<'_>>, headers: &mut HeaderMap) {
        if let Some(trace) = self.trace {
            trace.inject_from(span.map_or(trace.span_id(), |s| s.id), headers);
        }
    }
}

/// Why a request got no response, as `error.type` says it: a few fixed
/// words, so a collector can group by them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Atoll's policy refused it: not in `allowed_hosts`, a private
    /// address, a scheme or URL it does not send, too many redirects.
    Refused,
    Timeout,
    /// No connection could be made (refused, reset, TLS failed, DNS).
    Connect,
    /// The URL could not be read.
    InvalidUrl,
    /// The response was larger than the limit.
    ResponseTooLarge,
    /// Anything else the transport reported.
    Transport,
}

impl FailureKind {
    pub fn label(self) -> &'static str {
        match self {
            FailureKind::Refused => "refused",
            FailureKind::Timeout => "timeout",
            FailureKind::Connect => "connect",
            FailureKind::InvalidUrl => "invalid_url",
            FailureKind::ResponseTooLarge => "response_too_large",
            FailureKind::Transport => "transport",
        }
    }
}

/// One hop's span, open until its outcome is known.
pub(super) struct ClientSpan<'a> {
    trace: &'a TraceContext,
    id: u64,
    parent: u64,
    began: Began,
    name: String,
    attributes: Vec<(&'static str, spans::Value)>,
}

impl ClientSpan<'_> {
    /// Ends the span with the upstream's status (4xx and 5xx are errors
    /// for a client, as the conventions say).
    pub(super) fn answered(self, status: u16) {
        let mut span = self.finish();
        span.attributes
            .push(("http.response.status_code", i64::from(status).into()));
        if status >= 400 {
            span.attributes.push(("error.type", status.to_string().into()));
            span.error = Some(format!("the upstream answered {status}"));
        }
        spans::record(span);
    }

    /// Ends the span with no usable response: `why` is the message the
    /// guest gets, which names the origin and never the path or query.
    pub(super) fn failed(self, kind: FailureKind, status: Option<u16>, why: &str) {
        let mut span = self.finish();
        if let Some(status) = status {
            span.attributes
                .push(("http.response.status_code", i64::from(status).into()));
        }
        span.attributes.push(("error.type", kind.label().into()));
        span.error = Some(why.to_string());
        spans::record(span);
    }

    fn finish(self) -> spans::Span {
        let mut span = self.began.until_now(self.trace, self.id, SpanKind::Client, self.name);
        span.parent = Some((self.parent, false));
        span.attributes.extend(self.attributes);
        span
    }
}

/// The request's attributes, as the HTTP semantic conventions name them.
fn attributes(method: &Method, url: Option<&Url>, resend: u32) -> Vec<(&'static str, spans::Value)> {
    let mut attributes = Vec::with_capacity(8);
    attributes.push(("http.request.method", method.to_string().into()));
    if let Some(url) = url {
        if let Some(host) = url.host_str() {
            attributes.push(("server.address", host.to_string().into()));
        }
        if let Some(port) = url.port_or_known_default() {
            attributes.push(("server.port", i64::from(port).into()));
        }
        attributes.push(("url.full", redacted(url).into()));
    }
    if resend > 0 {
        attributes.push(("http.request.resend_count", i64::from(resend).into()));
    }
    attributes
}

/// `url` without what may hold a secret: the user and password, the query
/// string and the fragment.
pub(super) fn redacted(url: &Url) -> String {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_query(None);
    url.set_fragment(None);
    url.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::TRACEPARENT;

    #[test]
    fn a_url_loses_its_secrets() {
        let url = Url::parse("https://user:pw@api.example:8443/v1/items?token=s3cret#frag").unwrap();
        assert_eq!(redacted(&url), "https://api.example:8443/v1/items");
        let url = Url::parse("http://api.example/?").unwrap();
        assert_eq!(redacted(&url), "http://api.example/");
    }

    proptest::proptest! {
        /// Whatever a guest puts after the path, none of it is kept.
        #[test]
        fn no_query_fragment_or_user_info_survives(
            path in "[a-z0-9/._-]{0,20}",
            query in "[ -~]{0,30}",
            user in "[a-z]{1,8}",
            secret in "[A-Za-z0-9]{12}",
        ) {
            let text = format!("http://{user}:{secret}@api.example/{path}?{query}&k={secret}#{secret}");
            if let Ok(url) = Url::parse(&text) {
                let kept = redacted(&url);
                proptest::prop_assert!(!kept.contains(&secret), "{}", kept);
                proptest::prop_assert!(!kept.contains('?') && !kept.contains('#') && !kept.contains('@'), "{}", kept);
            }
        }
    }

    #[test]
    fn nothing_is_built_unless_the_invocations_span_is_exported() {
        let trace = TraceContext::start();
        let url = Url::parse("http://api.example/").unwrap();
        let unexported = Caller {
            trace: Some(&trace),
            span: None,
        };
        assert!(unexported.begin(&Method::GET, Some(&url), 0).is_none());
        let mut headers = HeaderMap::new();
        unexported.inject(None, &mut headers);
        assert_eq!(
            headers[TRACEPARENT],
            trace.traceparent().as_str(),
            "the request's span, as before"
        );

        let exported = Caller {
            trace: Some(&trace),
            span: Some(7),
        };
        let span = exported.begin(&Method::GET, Some(&url), 0).unwrap();
        let mut headers = HeaderMap::new();
        exported.inject(Some(&span), &mut headers);
        assert_eq!(headers[TRACEPARENT], trace.traceparent_for(span.id).as_str());
        assert_ne!(span.id, trace.span_id());

        // The guest's own traceparent is kept, span or not.
        let mut own = HeaderMap::new();
        own.insert(
            TRACEPARENT,
            http::HeaderValue::from_static("00-11111111111111111111111111111111-2222222222222222-00"),
        );
        exported.inject(Some(&span), &mut own);
        assert_eq!(
            own[TRACEPARENT],
            "00-11111111111111111111111111111111-2222222222222222-00"
        );
        assert!(Caller::default().begin(&Method::GET, Some(&url), 0).is_none());
    }
}
