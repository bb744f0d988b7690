//! A request body handed to a component as it arrives, held to the same
//! rules as a body read whole (`handler::read_body`): at most the route's
//! limit, each piece within `body_timeout` of the last, and on average
//! `min_body_rate` bytes a second once `body_timeout` has passed. A breach
//! ends the body with an error the component sees on its stream.

use crate::HttpConfig;
use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::time::Sleep;

/// Why a streamed request body was cut off.
#[derive(Debug)]
pub(crate) struct BodyError(String);

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BodyError {}

pub(crate) struct GuardedBody {
    inner: Incoming,
    limit: u64,
    received: u64,
    started: Instant,
    body_timeout: Duration,
    min_rate: u64,
    /// Made the first time the body has nothing ready: a request whose
    /// body is all there (most of them) never touches the timer.
    pause: Option<Pin<Box<Sleep>>>,
    failed: bool,
}

impl GuardedBody {
    pub(crate) fn new(inner: Incoming, limit: u64, config: &HttpConfig) -> GuardedBody {
        GuardedBody {
            inner,
            limit,
            received: 0,
            started: Instant::now(),
            body_timeout: config.body_timeout,
            min_rate: config.min_body_rate,
            pause: None,
            failed: false,
        }
    }

    fn fail(&mut self, why: String) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        self.failed = true;
        Poll::Ready(Some(Err(BodyError(why))))
    }
}

impl Body for GuardedBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        if this.failed {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received += data.len() as u64;
                    if this.received > this.limit {
                        let limit = this.limit;
                        return this.fail(crate::handler::too_large_message(limit));
                    }
                    let late = this.started.elapsed().saturating_sub(this.body_timeout);
                    if (this.received as f64) < late.as_secs_f64() * this.min_rate as f64 {
                        let rate = this.min_rate;
                        return this.fail(format!("the request body arrives slower than {rate} bytes a second"));
                    }
                }
                if let Some(pause) = &mut this.pause {
                    pause.as_mut().reset(tokio::time::Instant::now() + this.body_timeout);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => this.fail(format!("could not read the request body: {e}")),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match this
                .pause
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(this.body_timeout)))
                .as_mut()
                .poll(cx)
            {
                Poll::Ready(()) => {
                    let secs = this.body_timeout.as_secs_f64();
                    this.fail(format!("the request body paused for more than {secs}s"))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
