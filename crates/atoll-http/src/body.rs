//! A response body that also owns the request's spent instances.
//!
//! Hyper drops a body once it has written it, so tearing the instances down
//! in that drop keeps the reset of their memory off the response path,
//! on the same worker thread: no hand-off to another thread, no wake-ups.

use atoll_runtime::Spent;
use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

pub struct ReplyBody {
    data: Option<Bytes>,
    spent: Option<Spent>,
}

impl ReplyBody {
    pub(crate) fn new(data: Bytes) -> ReplyBody {
        ReplyBody {
            data: (!data.is_empty()).then_some(data),
            spent: None,
        }
    }

    pub(crate) fn keep_until_sent(&mut self, spent: Spent) {
        self.spent = Some(spent);
    }

    pub(crate) fn clear(&mut self) {
        self.data = None;
    }
}

impl Body for ReplyBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.get_mut().data.take().map(|d| Ok(Frame::data(d))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.data.as_ref().map_or(0, |d| d.len() as u64))
    }
}
