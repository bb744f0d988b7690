//! The streamed form of an outbound request, for guests that produce and
//! consume bodies as streams (wasi:http components): the request body is
//! sent as the guest writes it and the response body is read as the guest
//! reads it, both at once, under the same policy as whole requests.

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request whose body is a stream.
pub struct StreamingRequest<B> {
    pub method: Method,
    pub url: String,
    pub headers: HeaderMap,
    pub body: B,
    pub timeout: Option<Duration>,
}

/// A response whose head has arrived and whose body is still coming.
pub struct StreamingResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: LimitedResponseBody,
}

/// Why a streamed response body stopped early.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseBodyError {
    #[error("the response is larger than the limit of {0} bytes")]
    TooLarge(u64),
    #[error("reading the response timed out")]
    TimedOut,
    #[error("reading the response: {0}")]
    Failed(String),
}

/// An upstream's response body, ended with [`ResponseBodyError::TooLarge`]
/// once it passes the size limit.
pub struct LimitedResponseBody {
    inner: reqwest::Body,
    remaining: u64,
    max: u64,
}

impl LimitedResponseBody {
    pub(super) fn new(response: reqwest::Response, max: u64) -> LimitedResponseBody {
        LimitedResponseBody {
            inner: http::Response::<reqwest::Body>::from(response).into_body(),
            remaining: max,
            max,
        }
    }
}

impl Body for LimitedResponseBody {
    type Data = Bytes;
    type Error = ResponseBodyError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let frame = match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Ready(Some(Err(e))) if e.is_timeout() => return Poll::Ready(Some(Err(ResponseBodyError::TimedOut))),
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(ResponseBodyError::Failed(innermost(&e))))),
            Poll::Ready(Some(Ok(frame))) => frame,
        };
        if let Some(data) = frame.data_ref() {
            let n = data.len() as u64;
            if n > self.remaining {
                self.remaining = 0;
                return Poll::Ready(Some(Err(ResponseBodyError::TooLarge(self.max))));
            }
            self.remaining -= n;
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

fn innermost(e: &dyn std::error::Error) -> String {
    let mut last = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        last = s.to_string();
        source = s.source();
    }
    last
}

/// Makes a `Send` body `Sync`, as the HTTP client asks, by exclusive
/// access: it is only ever polled through `&mut`, so the lock is never
/// taken.
pub(super) struct Exclusive<B>(Mutex<B>);

impl<B> Exclusive<B> {
    pub(super) fn new(body: B) -> Exclusive<B> {
        Exclusive(Mutex::new(body))
    }
}

impl<B> Body for Exclusive<B>
where
    B: Body + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, BoxError>>> {
        let inner = self
            .get_mut()
            .0
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Pin::new(inner).poll_frame(cx).map_err(Into::into)
    }

    fn is_end_stream(&self) -> bool {
        self.0.lock().map(|b| b.is_end_stream()).unwrap_or(false)
    }

    fn size_hint(&self) -> SizeHint {
        self.0.lock().map(|b| b.size_hint()).unwrap_or_default()
    }
}
