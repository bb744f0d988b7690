//! Serving a component with its bodies streamed both ways, for routes
//! whose pipeline is that one component: the request body reaches the
//! guest as the client sends it, and the response goes out as the guest
//! writes it, so neither sits whole in memory.
//!
//! The guest runs inside the response body: once it has set its response,
//! the rest of its run (writing the body, returning) is polled whenever the
//! server polls the body for the next frame. So a quick component's whole
//! response is ready in the same poll and goes out in one write, no other
//! task or thread is woken, and the instance is torn down when the server
//! drops the body, after the last byte is written. A client that stops
//! reading stops the guest with it, until `--write-timeout` closes the
//! connection; its deadline still bounds the time it runs.

use crate::function::{WasiHttpFunction, failed, handle, log_stderr, past_deadline};
use crate::state::ComponentState;
use atoll_caps::{Invocation, ResponseParts};
use atoll_engine::{CallError, Lane};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;
use wasmtime::component::ResourceTable;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// Errors of a streamed body, on either side.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A response whose body the component may still be writing.
pub struct Streaming {
    /// The status the component set.
    pub status: http::StatusCode,
    /// The headers it set, framing and hop-by-hop ones dropped, within the
    /// limits any function's response headers are held to.
    pub headers: http::HeaderMap,
    /// Its body, as the component writes it. Dropping it before its end
    /// (a client that went away) stops the guest.
    pub body: StreamedBody,
}

impl WasiHttpFunction {
    /// Hands the request, with `body` streamed as its body, to the
    /// component in a brand-new instance, and returns as soon as the
    /// component has set its response, under the function's deadline or
    /// `until`, whichever is sooner. A failure before that is the error;
    /// one after it ends the body early and is logged.
    pub async fn serve<B>(&self, mut inv: Invocation, body: B, until: Option<Instant>) -> Result<Streaming, CallError>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: std::fmt::Display,
    {
        let function = inv.function.clone();
        let fname = function.clone();
        let request_id = inv.request_id.clone();
        let body = body.map_err(|e| wasmtime_wasi_http::Error::InternalError(Some(format!("the request body: {e}"))));
        let request = crate::exchange::taking_headers(&mut inv.request, body);
        let (mut store, deadline, stderr) = self.new_store(inv, until);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let answered = Arc::new(AtomicBool::new(false));
        let broken = Arc::new(std::sync::OnceLock::new());
        let breaks = broken.clone();
        let pre = self.pre().clone();
        let seen = answered.clone();
        // Boxed where it is made: the run's future is large (Wasmtime's
        // instantiate and call futures), and moving it into the lanes and
        // the body by value would copy it each time.
        let run = Box::pin(async move {
            let handled = tokio::time::timeout_at(
                tokio::time::Instant::from_std(deadline),
                handle(&pre, &mut store, request, tx),
            )
            .await;
            let result = match handled {
                Err(_) => Err(past_deadline(&store)),
                Ok(Err(e)) => Err(failed(&e, &store)),
                Ok(Ok(())) => Ok(()),
            };
            // The guest can write no more: what it left (an unset
            // response, an unfinished body) ends here, not at the deadline.
            // A failure is recorded first, so the body it cuts short ends in
            // an error rather than looking complete.
            if let Err(e) = &result {
                let _ = breaks.set(format!(
                    "function \"{function}\" failed before finishing its response body: {e}"
                ));
            }
            store.data_mut().table = ResourceTable::new();
            log_stderr(&store, stderr);
            if let Err(e) = &result
                && seen.load(Ordering::Acquire)
            {
                tracing::warn!(target: "atoll::http", function = &*function, request_id = &*request_id, error = %e, "the component failed after sending its response head; the body was cut short");
            }
            (result, store)
        });
        let engine = self.engine().clone();
        let mut guest: Guest = Box::pin(async move {
            let ((result, store), lane) = engine.lanes().run(run).await;
            let store = Some(store);
            (result, Spent { store, lane, engine })
        });
        // Until the response is set, the guest runs here; a quick one sets
        // it and finishes in this one poll.
        let mut rx = rx;
        let mut finished = None;
        let answer = std::future::poll_fn(|cx| {
            if finished.is_none()
                && let Poll::Ready(done) = guest.as_mut().poll(cx)
            {
                finished = Some(done);
            }
            match Pin::new(&mut rx).poll(cx) {
                Poll::Ready(answer) => Poll::Ready(answer.ok()),
                // Finished without answering (its table, and so the
                // outparam, is dropped when it ends).
                Poll::Pending if finished.is_some() => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            }
        })
        .await;
        let response = match answer {
            Some(Ok(response)) => response,
            Some(Err(code)) => {
                return Err(CallError::Guest {
                    message: format!("function \"{fname}\" answered with the error {code:?}"),
                });
            }
            None => {
                let (result, _spent) = match finished {
                    Some(done) => done,
                    None => guest.await,
                };
                return Err(result.err().unwrap_or_else(|| CallError::Guest {
                    message: format!("function \"{fname}\" returned without setting a response"),
                }));
            }
        };
        answered.store(true, Ordering::Release);
        let (head, body) = response.into_parts();
        let mut headers = head.headers;
        // A component's own framing headers are the server's to write.
        for name in ResponseParts::HOST_ONLY {
            headers.remove(*name);
        }
        let bytes: usize = headers.iter().map(|(n, v)| n.as_str().len() + v.len()).sum();
        if headers.len() > ResponseParts::MAX_HEADERS || bytes > ResponseParts::MAX_HEADER_BYTES {
            return Err(CallError::Guest {
                message: format!(
                    "function \"{fname}\" set too many headers: {} headers, {bytes} bytes (at most {} and {} bytes)",
                    headers.len(),
                    ResponseParts::MAX_HEADERS,
                    ResponseParts::MAX_HEADER_BYTES
                ),
            });
        }
        Ok(Streaming {
            status: head.status,
            headers,
            body: StreamedBody {
                inner: body,
                guest: if finished.is_some() { None } else { Some(guest) },
                engine: self.engine().clone(),
                spent: finished.map(|(_, spent)| spent),
                broken,
            },
        })
    }
}

/// The rest of a streaming guest's run, and what it leaves to tear down.
type Guest = Pin<Box<dyn Future<Output = (Result<(), CallError>, Spent)> + Send>>;

/// A finished instance, torn down when the body is dropped: after the
/// response has been written, on the lane the guest finished on.
struct Spent {
    store: Option<wasmtime::Store<ComponentState>>,
    lane: Lane,
    engine: atoll_engine::Engine,
}

impl Drop for Spent {
    fn drop(&mut self) {
        if self.lane == Lane::Slow
            && let Some(store) = self.store.take()
        {
            // Its memory may be large to reset: not on a connection thread.
            self.engine.lanes().drop_on_slow_lane(store);
        }
    }
}

/// A component's response body on its way to the client, with the rest of
/// the guest's run, which it drives.
pub struct StreamedBody {
    inner: HyperOutgoingBody,
    guest: Option<Guest>,
    spent: Option<Spent>,
    engine: atoll_engine::Engine,
    /// Set by the guest's run when it fails: an end of the body after
    /// that is the failure, not the end of the response.
    broken: Arc<std::sync::OnceLock<String>>,
}

impl Body for StreamedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Some(guest) = &mut this.guest
            && let Poll::Ready((_, spent)) = guest.as_mut().poll(cx)
        {
            this.guest = None;
            this.spent = Some(spent);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(None) => {
                if let Some(why) = this.broken.get() {
                    return Poll::Ready(Some(Err(why.clone().into())));
                }
                // Complete, and the guest may still have work after its
                // response: let it finish on its own, within its deadline.
                if let Some(guest) = this.guest.take() {
                    this.engine.finish_after_response(async move {
                        let _ = guest.await;
                    });
                }
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(format!("the component's body failed: {e:?}").into()))),
            Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(frame))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
