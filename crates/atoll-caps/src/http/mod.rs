//! `http`: outbound HTTP requests, to the function's `allowed_hosts` only.
//!
//! Every hop of a request is checked: the origin against the allowlist, the
//! address against [`policy`] (non-public addresses need an exact entry),
//! and redirects are followed here, not by the client, so each new location
//! is checked again and the host's auth headers ([`AuthRule`]) are sent
//! only to the origins they were declared for. A function never sees those
//! headers' values: they are added after it hands over the request, marked
//! sensitive, and never logged (nor put in a span: [`span`]).

mod grant;
mod host;
pub mod policy;
mod span;
mod streaming;

pub use grant::{Http, HttpGrant};
pub use span::{Caller, FailureKind};
pub use streaming::{LimitedResponseBody, ResponseBodyError, StreamingRequest, StreamingResponse};

use atoll_manifest::{HostPattern, HttpSettings};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use policy::{AddressPolicy, PolicyResolver};
use reqwest::Url;
use span::ClientSpan;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Headers the host adds to requests whose origin matches `hosts`.
#[derive(Clone)]
pub struct AuthRule {
    pub hosts: Vec<HostPattern>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl std::fmt::Debug for AuthRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<_> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("AuthRule")
            .field("hosts", &self.hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>())
            .field("headers", &names)
            .finish()
    }
}

/// A request as a guest describes it.
#[derive(Debug, Clone)]
pub struct OutboundRequest {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    pub timeout: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct OutboundResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

/// One function's outbound HTTP: its allowlist, the auth rules, and a
/// client whose resolver enforces the address policy.
#[derive(Clone)]
pub struct OutboundHttp {
    client: reqwest::Client,
    policy: AddressPolicy,
    auth: Arc<Vec<AuthRule>>,
    settings: HttpSettings,
}

/// Hop-by-hop and framing headers the client sets itself.
const FORBIDDEN: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "proxy-connection",
    "te",
    "trailer",
];

impl OutboundHttp {
    pub fn new(allowed: Vec<HostPattern>, auth: Vec<AuthRule>, settings: HttpSettings) -> Result<OutboundHttp, String> {
        use_ring_for_tls();
        let policy = AddressPolicy::new(allowed);
        let client = reqwest::Client::builder()
            // Redirects are followed by `send` so every hop is checked.
            .redirect(reqwest::redirect::Policy::none())
            // A proxy from the environment would make the resolver vet the
            // proxy's address instead of the target's.
            .no_proxy()
            .dns_resolver(Arc::new(PolicyResolver(policy.clone())))
            .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("atoll/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(OutboundHttp {
            client,
            policy,
            auth: Arc::new(auth),
            settings,
        })
    }

    /// Sends `req`, following allowed redirects, and reads the response up
    /// to the configured size limit. `caller` is the trace it is sent in.
    pub async fn send(&self, req: OutboundRequest, caller: Caller<'_>) -> Result<OutboundResponse, String> {
        let headers = guest_headers(&req.headers)?;
        let body = HopBody::Reusable(req.body);
        let (response, span) = self
            .exchange(req.method, &req.url, headers, body, req.timeout, caller)
            .await?;
        let status = response.status().as_u16();
        // The last hop's span covers reading the body: the host call's time.
        match self.read(response).await {
            Ok(read) => {
                if let Some(span) = span {
                    span.answered(status);
                }
                Ok(read)
            }
            Err((kind, why)) => {
                if let Some(span) = span {
                    span.failed(kind, Some(status), &why);
                }
                Err(why)
            }
        }
    }

    /// Sends a request whose body is a stream, sent as it is produced, and
    /// hands back the response as soon as its head arrives, its body to be
    /// read as it comes (within the same size limit and overall timeout
    /// as [`send`](Self::send)). Both directions run at once, so a caller
    /// may read the response while still writing the request.
    ///
    /// A streamed body can be sent only once: a 307 or 308 redirect, which
    /// would need it again, is returned to the caller instead of followed.
    /// Redirects that turn the request into a bodiless GET are followed and
    /// checked hop by hop as for `send`.
    ///
    /// The last hop's client span ends when the response head is in.
    pub async fn send_streaming<B>(
        &self,
        req: StreamingRequest<B>,
        caller: Caller<'_>,
    ) -> Result<StreamingResponse, String>
    where
        B: http_body::Body + Send + Unpin + 'static,
        B::Data: Into<Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let mut headers = req.headers;
        strip_forbidden(&mut headers);
        for name in self.injected_names() {
            headers.remove(name);
        }
        let body = if req.body.is_end_stream() {
            HopBody::Reusable(Bytes::new())
        } else {
            HopBody::Once(Some(reqwest::Body::wrap(streaming::Exclusive::new(req.body))))
        };
        let (response, span) = self
            .exchange(req.method, &req.url, headers, body, req.timeout, caller)
            .await?;
        let max = self.settings.max_response;
        let status = response.status();
        if response.content_length().is_some_and(|n| n > max) {
            let why = format!("the response is larger than the limit of {max} bytes");
            if let Some(span) = span {
                span.failed(FailureKind::ResponseTooLarge, Some(status.as_u16()), &why);
            }
            return Err(why);
        }
        if let Some(span) = span {
            span.answered(status.as_u16());
        }
        let headers = response.headers().clone();
        Ok(StreamingResponse {
            status,
            headers,
            body: LimitedResponseBody::new(response, max),
        })
    }

    /// The request's hops: each checked, with the host's auth headers for
    /// its origin, within one overall budget, and, if `caller`'s spans are
    /// exported, a client span each. Returns the final response (or a
    /// redirect that cannot be followed) with its hop's span, still open.
    async fn exchange<'c>(
        &self,
        mut method: Method,
        url: &str,
        guest_headers: HeaderMap,
        mut body: HopBody,
        timeout: Option<Duration>,
        caller: Caller<'c>,
    ) -> Result<(reqwest::Response, Option<ClientSpan<'c>>), String> {
        let started = Instant::now();
        let budget = timeout.unwrap_or(self.settings.timeout).min(self.settings.timeout);
        let first = match Url::parse(url) {
            Ok(first) => first,
            Err(e) => {
                // The span gets the reason, not the URL, whose query may hold a token.
                if let Some(span) = caller.begin(&method, None, 0) {
                    span.failed(FailureKind::InvalidUrl, None, &format!("invalid URL: {e}"));
                }
                return Err(format!("invalid URL \"{url}\": {e}"));
            }
        };
        let mut url = first.clone();
        let mut hop = 0;
        loop {
            let span = caller.begin(&method, Some(&url), hop);
            let fail = |span: Option<ClientSpan<'c>>, kind, status, why: String| {
                if let Some(span) = span {
                    span.failed(kind, status, &why);
                }
                Err(why)
            };
            if let Err(why) = self.check(&url, hop > 0) {
                return fail(span, FailureKind::Refused, None, why);
            }
            let mut headers = guest_headers.clone();
            caller.inject(span.as_ref(), &mut headers);
            for (name, value) in self.auth_for(&url) {
                headers.insert(name, value);
            }
            let Some(remaining) = budget.checked_sub(started.elapsed()) else {
                return fail(span, FailureKind::Timeout, None, format!("timed out after {budget:?}"));
            };
            let sent = self
                .client
                .request(method.clone(), url.clone())
                .headers(headers)
                .body(body.for_hop())
                .timeout(remaining)
                .send()
                .await;
            let response = match sent {
                Ok(response) => response,
                Err(e) => {
                    let (kind, why) = describe(&e, &url);
                    return fail(span, kind, None, why);
                }
            };
            let status = response.status();
            let location = response.headers().get(http::header::LOCATION).cloned();
            if let (true, Some(location)) = (status.is_redirection(), location) {
                let Some(next) = location.to_str().ok().and_then(|l| url.join(l).ok()) else {
                    let why = format!("{} sent an invalid redirect location", origin(&url));
                    return fail(span, FailureKind::Transport, Some(status.as_u16()), why);
                };
                if status == StatusCode::SEE_OTHER
                    || (matches!(status, StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND)
                        && method != Method::GET
                        && method != Method::HEAD)
                {
                    method = Method::GET;
                    body = HopBody::Reusable(Bytes::new());
                } else if !body.resendable() {
                    tracing::debug!(target: "atoll::http_out", from = %origin(&url), to = %origin(&next), status = status.as_u16(), "redirect not followed: the streamed body cannot be sent again");
                    return Ok((response, span));
                }
                if hop == self.settings.max_redirects {
                    let why = format!(
                        "too many redirects (more than {}) starting at {}",
                        self.settings.max_redirects,
                        origin(&first)
                    );
                    return fail(span, FailureKind::Refused, Some(status.as_u16()), why);
                }
                tracing::debug!(target: "atoll::http_out", from = %origin(&url), to = %origin(&next), status = status.as_u16(), "redirect");
                if let Some(span) = span {
                    span.answered(status.as_u16());
                }
                url = next;
                hop += 1;
                continue;
            }
            tracing::debug!(
                target: "atoll::http_out",
                method = %method,
                origin = %origin(&url),
                path = url.path(),
                status = status.as_u16(),
                duration_ms = started.elapsed().as_millis() as u64,
                "outbound request"
            );
            return Ok((response, span));
        }
    }

    /// The allowlist, then the literal address if the host is one.
    fn check(&self, url: &Url, redirected: bool) -> Result<(), String> {
        let scheme = url.scheme();
        if scheme != "http" && scheme != "https" {
            return Err(format!("unsupported scheme \"{scheme}\" (use http or https)"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("URLs with credentials are not allowed; use http_auth in atoll.toml".into());
        }
        let host = url.host_str().ok_or("the URL has no host")?;
        let port = url.port_or_known_default().ok_or("the URL has no port")?;
        if !self.policy.allows_origin(scheme, host, port) {
            let allowed: Vec<_> = self.policy.patterns().iter().map(|p| p.to_string()).collect();
            return Err(format!(
                "{}{} is not in the function's allowed_hosts ({})",
                if redirected { "redirected to " } else { "" },
                origin(url),
                allowed.join(", ")
            ));
        }
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>()
            && !self.policy.allows_literal(scheme, ip, port)
        {
            return Err(format!(
                "{ip} is a loopback, private or otherwise non-public address; name it exactly in allowed_hosts (scheme, address and port) to reach it"
            ));
        }
        if policy::is_localhost(host) && !self.policy.allows_private_origin(scheme, host, port) {
            return Err(format!(
                "{host} resolves only to loopback, private or otherwise non-public addresses, which this function may not reach unless allowed_hosts names {} exactly",
                origin(url)
            ));
        }
        Ok(())
    }

    fn auth_for(&self, url: &Url) -> Vec<(HeaderName, HeaderValue)> {
        let (scheme, host, port) = (
            url.scheme(),
            url.host_str().unwrap_or(""),
            url.port_or_known_default().unwrap_or(0),
        );
        self.auth
            .iter()
            .filter(|r| r.hosts.iter().any(|h| h.matches(scheme, host, port)))
            .flat_map(|r| r.headers.iter().cloned())
            .collect()
    }

    async fn read(&self, mut response: reqwest::Response) -> Result<OutboundResponse, (FailureKind, String)> {
        let max = self.settings.max_response;
        let too_large = || {
            (
                FailureKind::ResponseTooLarge,
                format!("the response is larger than the limit of {max} bytes"),
            )
        };
        if response.content_length().is_some_and(|n| n > max) {
            return Err(too_large());
        }
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| {
            let kind = if e.is_timeout() {
                FailureKind::Timeout
            } else {
                FailureKind::Transport
            };
            (kind, format!("reading the response: {e}"))
        })? {
            if (body.len() + chunk.len()) as u64 > max {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(OutboundResponse {
            status,
            headers,
            body: body.into(),
        })
    }

    /// Header names the host injects for some origin; a guest may not set them.
    fn injected_names(&self) -> impl Iterator<Item = &HeaderName> {
        self.auth.iter().flat_map(|r| r.headers.iter().map(|(n, _)| n))
    }
}

/// Makes ring the process's TLS crypto provider (reqwest is built without
/// one of its own). Installing can only fail if a provider is already set,
/// which then serves as well.
pub fn use_ring_for_tls() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// What a hop sends: bytes can be sent again after a redirect, a stream
/// only once.
enum HopBody {
    Reusable(Bytes),
    Once(Option<reqwest::Body>),
}

impl HopBody {
    fn for_hop(&mut self) -> reqwest::Body {
        match self {
            HopBody::Reusable(bytes) => bytes.clone().into(),
            HopBody::Once(body) => body.take().unwrap_or_default(),
        }
    }

    fn resendable(&self) -> bool {
        matches!(self, HopBody::Reusable(_))
    }
}

fn guest_headers(list: &[(String, String)]) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::new();
    for (name, value) in list {
        let n = HeaderName::try_from(name.as_str()).map_err(|_| format!("\"{name}\" is not a valid header name"))?;
        if FORBIDDEN.contains(&n.as_str()) {
            continue;
        }
        let v =
            HeaderValue::try_from(value.as_str()).map_err(|_| format!("the value of header \"{name}\" is invalid"))?;
        map.append(n, v);
    }
    Ok(map)
}

fn strip_forbidden(headers: &mut HeaderMap) {
    for name in FORBIDDEN {
        headers.remove(*name);
    }
}

/// `scheme://host:port`, for messages: never the path or query, which may
/// carry tokens.
fn origin(url: &Url) -> String {
    format!(
        "{}://{}{}",
        url.scheme(),
        url.host_str().unwrap_or(""),
        url.port().map(|p| format!(":{p}")).unwrap_or_default()
    )
}

/// What the guest is told of a request that got no response, and its kind
/// for the span: the resolver's refusal of a private address is the
/// policy's, not the network's.
fn describe(e: &reqwest::Error, url: &Url) -> (FailureKind, String) {
    let mut kind = if e.is_timeout() {
        FailureKind::Timeout
    } else if e.is_connect() {
        FailureKind::Connect
    } else {
        FailureKind::Transport
    };
    let mut msg = format!("request to {} failed", origin(url));
    if e.is_timeout() {
        msg.push_str(": timed out");
    } else if e.is_connect() {
        msg.push_str(": cannot connect");
    }
    // The innermost cause says what actually happened (e.g. the resolver's refusal).
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    let mut last = None;
    while let Some(s) = source {
        if s.downcast_ref::<policy::NonPublic>().is_some() {
            kind = FailureKind::Refused;
        }
        last = Some(s.to_string());
        source = s.source();
    }
    if let Some(cause) = last {
        msg.push_str(": ");
        msg.push_str(&cause);
    }
    (kind, msg)
}
