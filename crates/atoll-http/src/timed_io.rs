//! A connection that fails when its client goes quiet where hyper has no
//! clock of its own: before the first byte, and while a response waits to
//! be written.
//!
//! Hyper times the reading of a request's headers, but the protocol
//! detection in front of it (HTTP/1.1 or HTTP/2) waits for the first bytes
//! without a limit, so a connection that sends nothing would be kept for
//! ever: the first read has its own deadline. Nothing times writing a
//! response either: a client that stops reading would keep its connection,
//! and the response bytes waiting for it, for ever. That clock starts when
//! a write cannot proceed (the client's receive window is full) and is
//! cleared by any progress, so a slow reader that keeps reading is never
//! cut off; one that stops is, after the timeout.

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

pub(crate) struct TimedIo<T> {
    inner: T,
    timeout: Duration,
    // Made on the first stalled write: most connections never stall.
    stalled: Option<Pin<Box<Sleep>>>,
    stalled_now: bool,
    // Until the first byte arrives.
    first_read: Option<(Duration, Pin<Box<Sleep>>)>,
}

impl<T> TimedIo<T> {
    /// `first_byte`: how long to wait for the client to send anything;
    /// `write`: how long a write may make no progress.
    pub(crate) fn new(inner: T, first_byte: Duration, write: Duration) -> Self {
        TimedIo {
            inner,
            timeout: write,
            stalled: None,
            stalled_now: false,
            first_read: Some((first_byte, Box::pin(tokio::time::sleep(first_byte)))),
        }
    }

    /// Passes `result` through, starting the clock on `Pending` and failing
    /// once it has run out.
    fn watch<R>(&mut self, cx: &mut Context<'_>, result: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        if result.is_ready() {
            self.stalled_now = false;
            return result;
        }
        // The clock is read only when a stall starts, not on every poll
        // of one that goes on.
        let timeout = self.timeout;
        let sleep = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if !self.stalled_now {
            self.stalled_now = true;
            sleep.as_mut().reset(Instant::now() + timeout);
        }
        ready!(sleep.as_mut().poll(cx));
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("the client read nothing for {:?}", self.timeout),
        )))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for TimedIo<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        let Some((limit, first)) = &mut this.first_read else {
            return result;
        };
        if result.is_ready() {
            this.first_read = None;
            return result;
        }
        let limit = *limit;
        ready!(first.as_mut().poll(cx));
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("the client sent nothing for {limit:?}"),
        )))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TimedIo<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.watch(cx, result)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.watch(cx, result)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_flush(cx);
        this.watch(cx, result)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.watch(cx, result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_reader_that_stops_is_cut_off_and_one_that_reads_is_not() {
        let (client, server) = tokio::io::duplex(1024);
        let mut server = TimedIo::new(server, Duration::from_secs(60), Duration::from_millis(200));
        let mut client = client;
        // A reader that keeps reading, slowly, gets everything.
        let reader = tokio::spawn(async move {
            let mut got = vec![0u8; 8192];
            let mut n = 0;
            while n < got.len() {
                tokio::time::sleep(Duration::from_millis(20)).await;
                n += client.read(&mut got[n..]).await.unwrap();
            }
            client
        });
        server.write_all(&[7u8; 8192]).await.expect("progress resets the clock");
        let _client = reader.await.unwrap();
        // Nobody reads now: the write fails once the buffer is full.
        let err = server.write_all(&[7u8; 8192]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(err.to_string().contains("read nothing"), "{err}");
    }

    #[tokio::test]
    async fn a_client_that_sends_nothing_is_cut_off() {
        let (mut client, server) = tokio::io::duplex(1024);
        let mut server = TimedIo::new(server, Duration::from_millis(100), Duration::from_secs(60));
        let mut buf = [0u8; 4];
        let err = server.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);

        let (mut client2, server) = tokio::io::duplex(1024);
        let mut server = TimedIo::new(server, Duration::from_millis(100), Duration::from_secs(60));
        client2.write_all(b"GET").await.unwrap();
        assert_eq!(server.read(&mut buf).await.unwrap(), 3);
        // Once it has spoken, waiting is hyper's business.
        let waited = tokio::time::timeout(Duration::from_millis(300), server.read(&mut buf)).await;
        assert!(waited.is_err(), "no deadline after the first byte");
        client.write_all(b"x").await.ok();
    }
}
