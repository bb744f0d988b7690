//! Where the CLI's output goes: log lines (text or JSON, filtered by
//! `ATOLL_LOG`) and build progress, both on stderr, never interleaved
//! mid-line. While progress bars are drawn on a terminal, each log line is
//! written with the bars lifted ([`Progress`]); off a terminal there are no
//! bars, and progress is plain lines, or log events when the log is JSON, so
//! a JSON log stays one object per line.

mod json;

use clap::ValueEnum;
use indicatif::MultiProgress;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable key=value lines on a terminal, JSON otherwise.
    Auto,
    Text,
    Json,
}

/// Logs go to stderr; `ATOLL_LOG` (or `RUST_LOG`) filters them, e.g.
/// `ATOLL_LOG=atoll=debug`. The returned guard flushes what is buffered.
pub fn init(format: LogFormat, default_level: &str) -> FlushGuard {
    // notify logs at info a watch it could not remove, which only means
    // the directory was deleted first ("not a real error", its source says).
    let filter = std::env::var("ATOLL_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .map(EnvFilter::new)
        .unwrap_or_else(|_| EnvFilter::new(format!("{default_level},notify=warn")));
    let terminal = std::io::stderr().is_terminal();
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !terminal,
    };
    JSON.store(json, Ordering::Relaxed);
    let out = BufferedStderr::start(terminal);
    let _ = OUT.set(out.clone());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(out.clone())
        .with_ansi(terminal);
    if json {
        builder.event_format(json::JsonLines).init();
    } else {
        builder.compact().init();
    }
    FlushGuard(out)
}

/// Stderr with a shared buffer: a server logs a line per request, and a
/// `write` syscall per line cost ~10% of hello-world throughput. Lines
/// are appended in memory and written when the buffer passes 32 KiB, by a
/// background flush every 50 ms, and on exit. On a terminal every line is
/// written at once, so interactive use sees no delay. (A writer thread fed by
/// a channel was measured too: its wake-ups cost more than the syscalls.)
#[derive(Clone)]
struct BufferedStderr {
    buf: Arc<Mutex<Vec<u8>>>,
    immediate: bool,
}

const FLUSH_AT: usize = 32 * 1024;

impl BufferedStderr {
    fn start(immediate: bool) -> BufferedStderr {
        let out = BufferedStderr {
            buf: Arc::new(Mutex::new(Vec::with_capacity(FLUSH_AT * 2))),
            immediate,
        };
        if !immediate {
            let weak = Arc::downgrade(&out.buf);
            std::thread::Builder::new()
                .name("atoll-log-flush".into())
                .spawn(move || {
                    while let Some(buf) = weak.upgrade() {
                        flush(&buf);
                        drop(buf);
                        std::thread::sleep(Duration::from_millis(50));
                    }
                })
                .expect("spawning the log flusher");
        }
        out
    }
}

fn flush(buf: &Mutex<Vec<u8>>) {
    let mut b = buf.lock().unwrap_or_else(|p| p.into_inner());
    if !b.is_empty() {
        let _ = std::io::stderr().write_all(&b);
        b.clear();
    }
}

impl Write for BufferedStderr {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.immediate {
            // tracing writes each event in one write_all, so a line is
            // written whole between two redraws of the bars.
            return Progress::lifted(|| std::io::stderr().write(data));
        }
        let mut b = self.buf.lock().unwrap_or_else(|p| p.into_inner());
        b.extend_from_slice(data);
        if b.len() >= FLUSH_AT {
            let _ = std::io::stderr().write_all(&b);
            b.clear();
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        flush(&self.buf);
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BufferedStderr {
    type Writer = BufferedStderr;
    fn make_writer(&'a self) -> BufferedStderr {
        self.clone()
    }
}

/// Flushes buffered log lines when dropped (at the end of a command).
pub struct FlushGuard(BufferedStderr);

impl Drop for FlushGuard {
    fn drop(&mut self) {
        flush(&self.0.buf);
    }
}

/// The log's stderr (set once by [`init`]), also for plain lines, so they
/// keep their order among the log lines and stay clear of the bars.
static OUT: OnceLock<BufferedStderr> = OnceLock::new();

/// Prints `text` and a newline on stderr, in order with the log lines and
/// above any progress bars.
pub fn print_line(text: &str) {
    match OUT.get() {
        Some(out) => {
            let mut out = out.clone();
            let _ = out.write_all(format!("{text}\n").as_bytes());
        }
        None => eprintln!("{text}"),
    }
}

/// Logs an error with a multi-line explanation (manifest errors with their
/// carets, a module that does not load): in text as one event whose lines
/// follow it, in JSON as one event per line, so each stays readable and a
/// JSON log stays one object per line.
pub fn error_with_details(message: &str, details: &str) {
    if is_json() {
        tracing::error!("{message}");
        for line in details.trim_end().lines() {
            tracing::error!("{line}");
        }
    } else {
        tracing::error!("{message}:\n{}", details.trim_end());
    }
}

/// Whether log lines are JSON (set once by [`init`]).
static JSON: AtomicBool = AtomicBool::new(false);

/// Whether log lines are JSON objects, in which case nothing else should be
/// printed between them.
pub fn is_json() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// The progress bars being drawn, if any: log lines lift them while they
/// are written.
static BARS: Mutex<Option<MultiProgress>> = Mutex::new(None);

/// Progress bars on stderr, for as long as this lives; `None` off a
/// terminal. Log lines and [`print_line`]s appear above the bars, whole.
pub struct Progress(MultiProgress);

impl Progress {
    pub fn start() -> Option<Progress> {
        if !std::io::stderr().is_terminal() {
            return None;
        }
        let bars = MultiProgress::new();
        *BARS.lock().unwrap_or_else(|p| p.into_inner()) = Some(bars.clone());
        Some(Progress(bars))
    }

    pub fn bars(&self) -> &MultiProgress {
        &self.0
    }

    /// Runs `write` with the bars, if any, cleared from the screen.
    fn lifted<R>(write: impl FnOnce() -> R) -> R {
        let bars = BARS.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match bars {
            Some(b) => b.suspend(write),
            None => write(),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        *BARS.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let _ = self.0.clear();
    }
}
