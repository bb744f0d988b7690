//! W3C Trace Context (`traceparent`), so a request can be followed across
//! services: an incoming trace is continued (or a new one started), its id
//! tags every log line of the request, and the function's outbound HTTP
//! requests carry it on with Atoll's own span as their parent.
//!
//! The sampled flag says whether the trace is recorded, as the sampler
//! decides ([`crate::spans::sampler`]); by default it is passed on as it
//! came, and set on traces Atoll starts so that services downstream that
//! sample by their parent keep the trace.
//! The ids here are the ones exported (`crate::spans`): Atoll's span for
//! the request is the server span, the client's the server span's parent.

use http::{HeaderMap, HeaderValue};
use std::fmt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

/// One request's place in a trace: the trace, Atoll's span for the
/// request, the trace flags, and the vendors' `tracestate` passed on as it
/// came.
#[derive(Clone, PartialEq, Eq)]
pub struct TraceContext {
    trace_id: u128,
    span_id: u64,
    /// The caller's span, when the trace was continued.
    parent: Option<u64>,
    flags: u8,
    state: Option<HeaderValue>,
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.traceparent())
    }
}

/// A trace id as it is written: 32 lower-case hex digits.
#[derive(Clone, Copy)]
pub struct TraceId(u128);

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl TraceContext {
    /// Continues the trace `headers` carry in a valid `traceparent`, with a
    /// new span of Atoll's; else starts a new trace. A malformed header is
    /// ignored, as the specification asks.
    pub fn continue_or_start(headers: &HeaderMap) -> TraceContext {
        headers
            .get(TRACEPARENT)
            .and_then(|v| TraceContext::parse(v.as_bytes()))
            .map(|parent| TraceContext {
                span_id: random_nonzero(),
                parent: Some(parent.span_id),
                flags: u8::from(crate::spans::sampler::sampled(parent.trace_id, Some(parent.sampled()))),
                state: headers.get(TRACESTATE).cloned(),
                ..parent
            })
            .unwrap_or_else(TraceContext::start)
    }

    /// A new trace, with Atoll's span as its root.
    pub fn start() -> TraceContext {
        let trace_id = (u128::from(random_nonzero()) << 64) | u128::from(random_nonzero());
        TraceContext {
            trace_id,
            span_id: random_nonzero(),
            parent: None,
            flags: u8::from(crate::spans::sampler::sampled(trace_id, None)),
            state: None,
        }
    }

    /// `version-traceid-parentid-flags`, as in the W3C recommendation:
    /// version 00 exactly, or a later version (not ff) with at least those
    /// fields; ids in lower-case hex and not all zero.
    fn parse(text: &[u8]) -> Option<TraceContext> {
        let text = std::str::from_utf8(text).ok()?.trim();
        if text.len() < 55 {
            return None;
        }
        let (head, rest) = text.split_at(55);
        let version = &head[..2];
        if !is_hex(version) || version == "ff" || (version == "00" && !rest.is_empty()) {
            return None;
        }
        if !rest.is_empty() && !rest.starts_with('-') {
            return None;
        }
        let b = head.as_bytes();
        if b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
            return None;
        }
        let (trace, span, flags) = (&head[3..35], &head[36..52], &head[53..55]);
        if !(is_hex(trace) && is_hex(span) && is_hex(flags)) {
            return None;
        }
        let trace_id = u128::from_str_radix(trace, 16).ok()?;
        let span_id = u64::from_str_radix(span, 16).ok()?;
        let flags = u8::from_str_radix(flags, 16).ok()?;
        (trace_id != 0 && span_id != 0).then_some(TraceContext {
            trace_id,
            span_id,
            parent: None,
            // Only the sampled bit is defined for version 00.
            flags: flags & 0x01,
            state: None,
        })
    }

    pub fn trace_id(&self) -> TraceId {
        TraceId(self.trace_id)
    }

    /// The trace id as a number, for an exporter.
    pub fn trace_id_value(&self) -> u128 {
        self.trace_id
    }

    /// Atoll's span for the request: the parent of what it sends on.
    pub fn span_id(&self) -> u64 {
        self.span_id
    }

    /// The caller's span, if the trace came with the request.
    pub fn parent_span_id(&self) -> Option<u64> {
        self.parent
    }

    /// Whether the trace is sampled (recorded): the caller's flag, or the
    /// sampler's decision where it does not follow the caller.
    pub fn sampled(&self) -> bool {
        self.flags & 0x01 != 0
    }

    /// The header for a request sent on the trace's behalf: Atoll's span as
    /// its parent.
    pub fn traceparent(&self) -> String {
        self.traceparent_for(self.span_id)
    }

    /// The header for a request sent from within span `span_id` of this
    /// trace (a client span of Atoll's).
    pub fn traceparent_for(&self, span_id: u64) -> String {
        format!("00-{:032x}-{:016x}-{:02x}", self.trace_id, span_id, self.flags)
    }

    /// The incoming `tracestate`, to pass on unchanged.
    pub fn tracestate(&self) -> Option<&HeaderValue> {
        self.state.as_ref()
    }

    /// Adds `traceparent` (and the incoming `tracestate`) to an outbound
    /// request's headers, unless the function set its own: a guest that
    /// traces itself knows its spans better.
    pub fn inject(&self, outbound: &mut HeaderMap) {
        self.inject_from(self.span_id, outbound);
    }

    /// [`inject`](Self::inject), naming span `span_id` as the parent.
    pub fn inject_from(&self, span_id: u64, outbound: &mut HeaderMap) {
        if outbound.contains_key(TRACEPARENT) {
            return;
        }
        if let Ok(v) = HeaderValue::from_str(&self.traceparent_for(span_id)) {
            outbound.insert(TRACEPARENT, v);
        }
        if let Some(state) = &self.state
            && !outbound.contains_key(TRACESTATE)
        {
            outbound.insert(TRACESTATE, state.clone());
        }
    }
}

/// A new span id for a span inside this request (an invocation's).
pub fn new_span_id() -> u64 {
    random_nonzero()
}

fn is_hex(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Ids that must not collide across services: a per-process random seed
/// (std's hasher keys come from the OS) mixed with a counter through a
/// bijection.
fn random_nonzero() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seed = *SEED.get_or_init(|| {
        use std::hash::{BuildHasher, RandomState};
        RandomState::new().hash_one((std::process::id(), std::time::SystemTime::now()))
    });
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut z = seed.wrapping_add(n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        if z != 0 {
            return z;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(tp: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(TRACEPARENT, HeaderValue::from_str(tp).unwrap());
        h
    }

    #[test]
    fn a_valid_traceparent_is_continued_with_a_new_span() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let ctx = TraceContext::continue_or_start(&headers(tp));
        assert_eq!(ctx.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        let out = ctx.traceparent();
        assert!(out.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"), "{out}");
        assert!(out.ends_with("-01"));
        assert_ne!(
            &out[36..52],
            "00f067aa0ba902b7",
            "Atoll's own span is the parent downstream"
        );
        assert_eq!(out[36..52], format!("{:016x}", ctx.span_id()));
        assert_eq!(
            ctx.parent_span_id(),
            Some(0x00f0_67aa_0ba9_02b7),
            "the caller's span is kept"
        );
        assert!(ctx.sampled());
        assert!(!TraceContext::continue_or_start(&headers(&tp.replace("-01", "-00"))).sampled());
        assert_eq!(TraceContext::start().parent_span_id(), None);
        // A later version with more fields is read for the fields it knows.
        let later = TraceContext::continue_or_start(&headers(&format!("cc{}-what-ever", &tp[2..])));
        assert_eq!(later.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn a_malformed_traceparent_starts_a_new_trace() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
            "00-4bf92f3577b34da6a3ce929d0e0e47zz-00f067aa0ba902b7-01",
        ] {
            let ctx = TraceContext::continue_or_start(&headers(bad));
            assert_ne!(
                ctx.trace_id().to_string(),
                "4bf92f3577b34da6a3ce929d0e0e4736",
                "{bad:?}"
            );
            let again = TraceContext::parse(ctx.traceparent().as_bytes()).unwrap();
            assert_eq!(again.traceparent(), ctx.traceparent(), "{bad:?}");
        }
    }

    proptest::proptest! {
        /// Whatever a client sends, the request gets a well-formed trace,
        /// and a valid header keeps its trace id.
        #[test]
        fn any_header_gives_a_well_formed_trace(text in "[ -~]{0,80}", trace in "[0-9a-f]{32}", span in "[0-9a-f]{16}") {
            if let Ok(v) = HeaderValue::from_str(&text) {
                let mut h = HeaderMap::new();
                h.insert(TRACEPARENT, v);
                let ctx = TraceContext::continue_or_start(&h);
                proptest::prop_assert!(TraceContext::parse(ctx.traceparent().as_bytes()).is_some());
            }
            let valid = format!("00-{trace}-{span}-01");
            let ctx = TraceContext::continue_or_start(&headers(&valid));
            if trace.bytes().any(|b| b != b'0') && span.bytes().any(|b| b != b'0') {
                proptest::prop_assert_eq!(ctx.trace_id().to_string(), trace);
            }
        }
    }

    #[test]
    fn new_traces_are_distinct_and_well_formed() {
        let ids: std::collections::HashSet<String> = (0..10_000)
            .map(|_| TraceContext::start().trace_id().to_string())
            .collect();
        assert_eq!(ids.len(), 10_000);
        assert!(ids.iter().all(|id| id.len() == 32 && is_hex(id)));
    }

    #[test]
    fn a_functions_own_traceparent_is_kept() {
        let mut incoming = headers("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        incoming.insert(TRACESTATE, HeaderValue::from_static("vendor=1"));
        let ctx = TraceContext::continue_or_start(&incoming);
        let mut mine = headers("00-11111111111111111111111111111111-2222222222222222-00");
        ctx.inject(&mut mine);
        assert_eq!(
            mine[TRACEPARENT],
            "00-11111111111111111111111111111111-2222222222222222-00"
        );
        let mut plain = HeaderMap::new();
        ctx.inject(&mut plain);
        assert_eq!(plain[TRACEPARENT], ctx.traceparent().as_str());
        assert_eq!(plain[TRACESTATE], "vendor=1");
    }
}
