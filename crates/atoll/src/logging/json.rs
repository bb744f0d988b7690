//! One JSON object per event, written straight into the line buffer.
//!
//! tracing-subscriber's JSON formatter goes through serde and formats the
//! timestamp's calendar fields on every event; with a log line per request
//! that was about 8% of a hello-world request's CPU. This writes the same
//! fields (`timestamp`, `level`, `target`, the event's fields flattened,
//! `spans` when inside any) with a per-thread cached date prefix and no
//! intermediate values.

use std::cell::RefCell;
use std::fmt::{self, Write};
use std::time::{SystemTime, UNIX_EPOCH};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut w: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let meta = event.metadata();
        w.write_str("{\"timestamp\":\"")?;
        write_timestamp(&mut w, SystemTime::now())?;
        write!(w, "\",\"level\":\"{}\",\"target\":", meta.level())?;
        write_json_str(&mut w, meta.target())?;
        let mut fields = Fields {
            w: &mut w,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        if let Some(scope) = ctx.event_scope() {
            w.write_str(",\"spans\":[")?;
            for (i, span) in scope.from_root().enumerate() {
                if i > 0 {
                    w.write_char(',')?;
                }
                write_json_str(&mut w, span.name())?;
            }
            w.write_char(']')?;
        }
        w.write_str("}\n")
    }
}

/// RFC 3339 in UTC with microseconds; the part up to the second is
/// formatted once per second per thread.
fn write_timestamp(w: &mut Writer<'_>, now: SystemTime) -> fmt::Result {
    thread_local! {
        static PREFIX: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    PREFIX.with_borrow_mut(|(cached, prefix)| {
        if *cached != secs {
            prefix.clear();
            let date = chrono::DateTime::from_timestamp(secs as i64, 0).unwrap_or_default();
            let _ = write!(prefix, "{}", date.format("%Y-%m-%dT%H:%M:%S"));
            *cached = secs;
        }
        write!(w, "{prefix}.{:06}Z", since.subsec_micros())
    })
}

struct Fields<'a, 'b> {
    w: &'a mut Writer<'b>,
    result: fmt::Result,
}

impl Fields<'_, '_> {
    fn key(&mut self, field: &Field) -> fmt::Result {
        self.w.write_char(',')?;
        write_json_str(self.w, field.name())?;
        self.w.write_char(':')
    }

    fn record_with(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = self.key(field).and_then(|_| value(self.w));
        }
    }
}

impl Visit for Fields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.record_with(field, |w| write_json_str(w, value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.record_with(field, |w| write!(w, "{value}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.record_with(field, |w| write!(w, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.record_with(field, |w| write!(w, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // JSON has no NaN or infinity: those are written as strings.
        if value.is_finite() {
            self.record_with(field, |w| write!(w, "{value}"));
        } else {
            self.record_with(field, |w| write!(w, "\"{value}\""));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.record_with(field, |w| {
            w.write_char('"')?;
            write!(Escaped(w), "{value:?}")?;
            w.write_char('"')
        });
    }
}

fn write_json_str(w: &mut Writer<'_>, s: &str) -> fmt::Result {
    w.write_char('"')?;
    Escaped(w).write_str(s)?;
    w.write_char('"')
}

/// Escapes what it is given as the inside of a JSON string.
struct Escaped<'a, 'b>(&'a mut Writer<'b>);

impl Write for Escaped<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut start = 0;
        for (i, b) in s.bytes().enumerate() {
            let escape = match b {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0..=0x1f => "",
                _ => continue,
            };
            self.0.write_str(&s[start..i])?;
            if escape.is_empty() {
                write!(self.0, "\\u{b:04x}")?;
            } else {
                self.0.write_str(escape)?;
            }
            start = i + 1;
        }
        self.0.write_str(&s[start..])
    }
}

#[cfg(test)]
mod tests {
    use super::JsonLines;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl Write for Capture {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn lines(emit: impl FnOnce()) -> Vec<serde_json::Value> {
        let capture = Capture::default();
        let out = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            .event_format(JsonLines)
            .with_writer(move || out.clone())
            .with_max_level(tracing::Level::TRACE)
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        let text = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    #[test]
    fn every_kind_of_field_is_valid_json() {
        let tricky = "quote \" backslash \\ newline \n tab \t bell \u{7} é ✓";
        let out = lines(|| {
            tracing::info!(
                target: "atoll::http",
                text = tricky,
                shown = %tricky,
                debugged = ?Some(tricky),
                count = 42u64,
                delta = -7i64,
                ratio = 0.5f64,
                nan = f64::NAN,
                ok = true,
                "request {}", 1
            );
        });
        assert_eq!(out.len(), 1);
        let line = &out[0];
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["target"], "atoll::http");
        assert_eq!(line["message"], "request 1");
        assert_eq!(line["text"], tricky);
        assert_eq!(line["shown"], tricky);
        assert_eq!(line["debugged"], format!("{:?}", Some(tricky)));
        assert_eq!(line["count"], 42);
        assert_eq!(line["delta"], -7);
        assert_eq!(line["ratio"], 0.5);
        assert_eq!(line["nan"], "NaN");
        assert_eq!(line["ok"], true);
        let ts = line["timestamp"].as_str().unwrap();
        assert!(
            chrono::DateTime::parse_from_rfc3339(ts).is_ok() && ts.ends_with('Z') && ts.len() == 27,
            "{ts}"
        );
    }

    #[test]
    fn events_inside_spans_name_them() {
        let out = lines(|| {
            let outer = tracing::info_span!("deploy");
            let _outer = outer.enter();
            let inner = tracing::info_span!("load");
            let _inner = inner.enter();
            tracing::warn!("inside");
        });
        assert_eq!(out[0]["spans"], serde_json::json!(["deploy", "load"]));
        assert_eq!(out[0]["level"], "WARN");
    }
}
