//! A response body that also owns what the response keeps alive: the
//! request's spent instances and its share of the body budget.
//!
//! Hyper drops a body once it has taken its last frame, so tearing the
//! instances down in that drop keeps the reset of their memory off the
//! response path, on the same worker thread: no hand-off to another thread,
//! no wake-ups. A large body goes out in chunks: hyper asks for the next
//! one only when it has room to write it, so the budget share is given back
//! only as the client actually reads, and the instances are torn down as
//! soon as the first chunk is on its way rather than when the last is.
//!
//! A component's streamed response is the other kind of body: it passes
//! the component's frames through as they come, and keeps the request's
//! concurrency permit until it ends.

use crate::budget::Held;
use atoll_runtime::{BoxError, Spent, StreamedBody};
use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};

/// Largest frame handed to hyper at once.
const CHUNK: usize = 64 << 10;

pub struct ReplyBody {
    data: Bytes,
    started: bool,
    spent: Option<Spent>,
    _held: Option<Held>,
    stream: Option<StreamedBody>,
    _permit: Option<tokio::sync::OwnedSemaphorePermit>,
    /// The streaming function's own concurrency slot, if it has a limit.
    _slot: Option<atoll_runtime::Slot>,
}

impl ReplyBody {
    pub(crate) fn new(data: Bytes) -> ReplyBody {
        ReplyBody {
            data,
            started: false,
            spent: None,
            _held: None,
            stream: None,
            _permit: None,
            _slot: None,
        }
    }

    /// A body passed through as `stream` yields it.
    pub(crate) fn streamed(
        stream: StreamedBody,
        permit: tokio::sync::OwnedSemaphorePermit,
        slot: Option<atoll_runtime::Slot>,
    ) -> ReplyBody {
        ReplyBody {
            stream: Some(stream),
            _permit: Some(permit),
            _slot: slot,
            ..ReplyBody::new(Bytes::new())
        }
    }

    pub(crate) fn keep_until_sent(&mut self, spent: Spent, held: Option<Held>) {
        self.spent = Some(spent);
        self._held = held;
    }

    pub(crate) fn clear(&mut self) {
        self.data = Bytes::new();
        self.stream = None;
    }
}

impl Body for ReplyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Some(stream) = &mut this.stream {
            return Pin::new(stream).poll_frame(cx);
        }
        if this.data.is_empty() {
            return Poll::Ready(None);
        }
        // Hyper asks for another chunk once the previous one is written.
        if this.started {
            this.spent = None;
        }
        this.started = true;
        let chunk = if this.data.len() <= CHUNK {
            std::mem::take(&mut this.data)
        } else {
            this.data.split_to(CHUNK)
        };
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        match &self.stream {
            Some(stream) => stream.is_end_stream(),
            None => self.data.is_empty(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.stream {
            Some(stream) => stream.size_hint(),
            None => SizeHint::with_exact(self.data.len() as u64),
        }
    }
}
