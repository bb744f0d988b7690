//! Finished spans, for an exporter if one is installed (`atoll serve
//! --otlp-endpoint`): the HTTP server, the pipelines and the triggers
//! describe what they did here, with the ids of [`crate::trace`], and the
//! exporter ([`otlp`]) sends them on. Only the exporter knows OpenTelemetry:
//! the rest builds plain [`Span`]s.
//!
//! Process-wide, like the metrics: an invocation deep in the runtime
//! records without every layer carrying a handle. With no exporter, each
//! call site costs one atomic load ([`enabled`]) and builds nothing.

pub mod otlp;
pub mod resource;
pub mod sampler;

use crate::trace::TraceContext;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

/// What a span stands for, as OTLP's `SpanKind` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    /// A request Atoll answered.
    Server,
    /// Work inside Atoll: a function's invocation, a schedule's run.
    Internal,
    /// A message Atoll took from a subscription.
    Consumer,
    /// A request a function sent.
    Client,
}

/// An attribute's value. Names the server already holds (an app's, a
/// function's) are shared and labels are static, so a span copies no
/// more text than it must on the request's path.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Static(&'static str),
    Shared(Arc<str>),
    Str(String),
    Int(i64),
}

impl From<&'static str> for Value {
    fn from(s: &'static str) -> Value {
        Value::Static(s)
    }
}

impl From<Arc<str>> for Value {
    fn from(s: Arc<str>) -> Value {
        Value::Shared(s)
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Str(s)
    }
}

impl From<i64> for Value {
    fn from(n: i64) -> Value {
        Value::Int(n)
    }
}

/// One finished span.
#[derive(Debug, Clone)]
pub struct Span {
    pub trace_id: u128,
    pub span_id: u64,
    /// The parent span, if any, and whether it is another service's.
    pub parent: Option<(u64, bool)>,
    pub kind: SpanKind,
    pub name: String,
    pub start: SystemTime,
    pub end: SystemTime,
    pub attributes: Vec<(&'static str, Value)>,
    /// Set if the work failed: the span's status is then an error with
    /// this message.
    pub error: Option<String>,
}

/// Where finished spans go. It must return at once: it is called on the
/// request's path.
pub trait SpanSink: Send + Sync {
    fn record(&self, span: Span);
}

static SINK: OnceLock<Box<dyn SpanSink>> = OnceLock::new();

/// Sends every span recorded from now on to `sink`; only the first call
/// takes effect (one exporter for the process).
pub fn install(sink: Box<dyn SpanSink>) -> bool {
    SINK.set(sink).is_ok()
}

/// Whether spans are wanted at all; call sites check this before building one.
pub fn enabled() -> bool {
    SINK.get().is_some()
}

/// Hands `span` to the exporter, if one is installed.
pub fn record(span: Span) {
    if let Some(sink) = SINK.get() {
        sink.record(span);
    }
}

/// When something began, on both clocks: the wall clock for the exported
/// timestamps, the monotonic one for the duration (so a clock step does
/// not give a span a negative length).
#[derive(Debug, Clone, Copy)]
pub struct Began {
    wall: SystemTime,
    mono: Instant,
}

impl Began {
    pub fn now() -> Began {
        Began {
            wall: SystemTime::now(),
            mono: Instant::now(),
        }
    }

    /// Began `elapsed` ago.
    pub fn ago(elapsed: Duration) -> Began {
        let now = Began::now();
        Began {
            wall: now.wall.checked_sub(elapsed).unwrap_or(now.wall),
            mono: now.mono.checked_sub(elapsed).unwrap_or(now.mono),
        }
    }

    /// A span of `trace` from then until now, with no parent set yet.
    pub fn until_now(&self, trace: &TraceContext, span_id: u64, kind: SpanKind, name: String) -> Span {
        Span {
            trace_id: trace.trace_id_value(),
            span_id,
            parent: None,
            kind,
            name,
            start: self.wall,
            end: self.wall + self.mono.elapsed(),
            // Room for what any call site adds, so pushing never reallocates.
            attributes: Vec::with_capacity(8),
            error: None,
        }
    }
}

/// Whether `trace` is exported: an exporter is installed and the trace is
/// sampled, as [`sampler`] decided when the trace was started or continued.
pub fn wanted(trace: Option<&TraceContext>) -> bool {
    enabled() && trace.is_some_and(TraceContext::sampled)
}
