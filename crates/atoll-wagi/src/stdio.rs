//! A CGI program's stdout and stderr.
//!
//! Stdout is the response, so it is kept whole up to the function's output
//! limit; a write past the limit traps with a message that names it (Wasmtime's
//! `MemoryOutputPipe` would instead report a closed pipe, and the program
//! would die of an error that says nothing about the limit). Stderr is only
//! for the log and for failure reports, so a bounded tail of it is kept and
//! writes never fail.

use bytes::Bytes;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// What is kept of stderr: enough for a panic message or the last lines.
const TAIL: usize = 8 * 1024;

/// How a captured stream behaves when it is full.
#[derive(Clone, Copy)]
enum Mode {
    /// Refuse the write with a trap naming the limit.
    Capped(usize),
    /// Keep only the last `TAIL` bytes.
    Tail,
}

/// One captured output stream; clones share the buffer.
#[derive(Clone)]
pub(crate) struct Capture {
    buf: Arc<Mutex<Vec<u8>>>,
    mode: Mode,
}

impl Capture {
    /// Stdout: the whole output, at most `limit` bytes.
    pub(crate) fn capped(limit: usize) -> Capture {
        Capture {
            buf: Arc::default(),
            mode: Mode::Capped(limit),
        }
    }

    /// Stderr: the last few KiB.
    pub(crate) fn tail() -> Capture {
        Capture {
            buf: Arc::default(),
            mode: Mode::Tail,
        }
    }

    fn push(&self, bytes: &[u8]) -> Result<(), String> {
        let mut buf = self.buf.lock().unwrap_or_else(|p| p.into_inner());
        match self.mode {
            Mode::Capped(limit) => {
                if buf.len().saturating_add(bytes.len()) > limit {
                    return Err(format!(
                        "the function wrote more than {limit} bytes ({} MiB) to stdout, the limit of a function's output",
                        limit >> 20
                    ));
                }
                buf.extend_from_slice(bytes);
            }
            Mode::Tail => {
                if bytes.len() >= TAIL {
                    buf.clear();
                    buf.extend_from_slice(&bytes[bytes.len() - TAIL..]);
                } else {
                    let overflow = (buf.len() + bytes.len()).saturating_sub(TAIL);
                    buf.drain(..overflow);
                    buf.extend_from_slice(bytes);
                }
            }
        }
        Ok(())
    }

    /// Everything captured, leaving the buffer empty.
    pub(crate) fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.buf.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The captured bytes as text, trailing whitespace trimmed.
    pub(crate) fn text(&self) -> String {
        let buf = self.buf.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&buf).trim_end().to_string()
    }
}

impl IsTerminal for Capture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Capture {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for Capture {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.push(&bytes)
            .map_err(|e| StreamError::Trap(wasmtime::Error::msg(e)))
    }
    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }
    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for Capture {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for Capture {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Poll::Ready(self.push(buf).map(|()| buf.len()).map_err(std::io::Error::other))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdout_refuses_past_its_limit_and_stderr_keeps_its_tail() {
        let out = Capture::capped(10);
        out.push(b"0123456789").unwrap();
        let err = out.push(b"x").unwrap_err();
        assert!(err.contains("more than 10 bytes"), "{err}");
        assert_eq!(out.take(), b"0123456789");

        let err = Capture::tail();
        err.push(&vec![b'x'; TAIL * 2]).unwrap();
        err.push(b"end\n").unwrap();
        let text = err.text();
        assert_eq!(text.len(), TAIL - 1);
        assert!(text.ends_with("xend"));
    }
}
