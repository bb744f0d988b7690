//! Serving a component with its bodies streamed both ways, for routes
//! whose pipeline is that one component: the request body reaches the
//! guest as the client sends it, and the response goes out as the guest
//! writes it, so neither sits whole in memory. The guest keeps running
//! after its response head is out, in a task of its own that owns the
//! instance, under the same deadline and memory limit as any invocation.

use crate::function::{WasiHttpFunction, failed, log_stderr};
use atoll_caps::{Invocation, ResponseParts};
use atoll_engine::CallError;
use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::task::JoinHandle;
use wasmtime::component::ResourceTable;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// Errors of a streamed body, on either side.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A response whose body the component may still be writing.
pub struct Streaming {
    /// The status and headers the component set (framing headers dropped).
    pub parts: ResponseParts,
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
    pub async fn serve<B>(&self, inv: Invocation, body: B, until: Option<Instant>) -> Result<Streaming, CallError>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: std::fmt::Display,
    {
        let function = inv.function.clone();
        let fname = function.clone();
        let request_id = inv.request_id.clone();
        let body = body.map_err(|e| wasmtime_wasi_http::Error::InternalError(Some(format!("the request body: {e}"))));
        let request = crate::exchange::with_body(&inv.request, body);
        let (mut store, deadline, stderr) = self.new_store(inv, until);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let answered = Arc::new(AtomicBool::new(false));
        let broken = Arc::new(std::sync::OnceLock::new());
        let breaks = broken.clone();
        let pre = self.pre().clone();
        let seen = answered.clone();
        let run = async move {
            let handled = tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), async {
                let proxy = pre.instantiate_async(&mut store).await?;
                let req = store.data_mut().http().new_incoming_request(Scheme::Http, request)?;
                let out = store.data_mut().http().new_response_outparam(tx)?;
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, req, out)
                    .await
            })
            .await;
            let result = match handled {
                Err(_) => Err(failed(&wasmtime::Error::new(atoll_engine::DeadlineExceeded), &store)),
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
            drop(store);
            result
        };
        let engine = self.engine().clone();
        let mut guest = GuestTask(Some(tokio::spawn(async move { engine.lanes().run(run).await.0 })));
        let response = match rx.await {
            Ok(Ok(response)) => response,
            Ok(Err(code)) => {
                return Err(CallError::Guest {
                    message: format!("function \"{fname}\" answered with the error {code:?}"),
                });
            }
            // The outparam is gone without a response: the run has ended.
            Err(_) => {
                return Err(guest.finish().await.err().unwrap_or_else(|| CallError::Guest {
                    message: format!("function \"{fname}\" returned without setting a response"),
                }));
            }
        };
        answered.store(true, Ordering::Release);
        let (head, body) = response.into_parts();
        let mut parts = ResponseParts {
            status: Some(head.status.as_u16()),
            ..ResponseParts::default()
        };
        for (name, value) in head.headers {
            let Some(name) = name else { continue };
            if ResponseParts::is_host_only(&name) {
                continue;
            }
            parts.append_header(name, value).map_err(|e| CallError::Guest {
                message: format!("function \"{fname}\" set too many headers: {e}"),
            })?;
        }
        Ok(Streaming {
            parts,
            body: StreamedBody {
                inner: body,
                guest,
                broken,
            },
        })
    }
}

/// The task running a streaming guest. Dropped before the body ended, it
/// stops the guest; after, the guest may finish what it does after its
/// response, within its deadline.
struct GuestTask(Option<JoinHandle<Result<(), CallError>>>);

impl GuestTask {
    async fn finish(&mut self) -> Result<(), CallError> {
        match self.0.take() {
            Some(task) => task.await.unwrap_or_else(|e| {
                if e.is_panic() {
                    std::panic::resume_unwind(e.into_panic());
                }
                Ok(())
            }),
            None => Ok(()),
        }
    }
}

impl Drop for GuestTask {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

/// A component's response body on its way to the client.
pub struct StreamedBody {
    inner: HyperOutgoingBody,
    guest: GuestTask,
    /// Set by the guest's task when it fails: an end of the body after
    /// that is the failure, not the end of the response.
    broken: Arc<std::sync::OnceLock<String>>,
}

impl Body for StreamedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(None) => {
                if let Some(why) = self.broken.get() {
                    return Poll::Ready(Some(Err(why.clone().into())));
                }
                // Complete: let the guest run on to its end.
                drop(self.guest.0.take());
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

impl StreamedBody {
    /// The body as one boxed type, for servers that mix it with others.
    pub fn boxed(self) -> UnsyncBoxBody<Bytes, BoxError> {
        BodyExt::boxed_unsync(self)
    }
}
