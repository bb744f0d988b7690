//! A connection whose writes fail once they have made no progress for a
//! while.
//!
//! Hyper has timeouts for reading a request's headers but none for writing
//! a response: a client that stops reading would keep its connection, and
//! the response bytes waiting for it, for ever. The clock starts when a
//! write cannot proceed (the client's receive window is full) and is
//! cleared by any progress, so a slow reader that keeps reading is never
//! cut off; one that stops is, after the timeout.

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

pub(crate) struct WriteTimeout<T> {
    inner: T,
    timeout: Duration,
    // Made on the first stalled write: most connections never stall.
    stalled: Option<Pin<Box<Sleep>>>,
    stalled_now: bool,
}

impl<T> WriteTimeout<T> {
    pub(crate) fn new(inner: T, timeout: Duration) -> Self {
        WriteTimeout {
            inner,
            timeout,
            stalled: None,
            stalled_now: false,
        }
    }

    /// Passes `result` through, starting the clock on `Pending` and failing
    /// once it has run out.
    fn watch<R>(&mut self, cx: &mut Context<'_>, result: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        if result.is_ready() {
            self.stalled_now = false;
            return result;
        }
        let deadline = Instant::now() + self.timeout;
        let sleep = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if !self.stalled_now {
            self.stalled_now = true;
            sleep.as_mut().reset(deadline);
        }
        ready!(sleep.as_mut().poll(cx));
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("the client read nothing for {:?}", self.timeout),
        )))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteTimeout<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteTimeout<T> {
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
        let mut server = WriteTimeout::new(server, Duration::from_millis(200));
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
}
