//! OTLP span export (`atoll serve --otlp-endpoint URL`): the spans the
//! server, the pipelines and the triggers record ([`super::record`]) go to
//! an OpenTelemetry collector over HTTP with protobuf, `URL/v1/traces`.
//!
//! A request only puts its spans in a bounded queue, which never waits: a
//! background task sends them in batches. When the collector is down or
//! slow the queue fills and spans are dropped, counted and logged at most
//! once a minute, so a request is never slower for it. On shutdown what is
//! queued is sent within a short bound.
//!
//! The OpenTelemetry SDK's span processors are not used: Atoll's spans are
//! already finished records with the ids it propagates, so they become the
//! SDK's `SpanData` directly and go to the OTLP exporter, which encodes and
//! sends them (with its retries, and the `OTEL_EXPORTER_OTLP_*` variables).

use super::{Span, SpanKind, SpanSink, Value};
use opentelemetry::trace::{SpanContext, SpanId, Status, TraceFlags, TraceId, TraceState};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter, SpanLinks};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, mpsc, oneshot};

/// Spans waiting to be sent; beyond this, new ones are dropped. A few
/// seconds of a busy server's requests, a few hundred kilobytes.
const QUEUE: usize = 4096;
/// Spans in one export request.
const BATCH: usize = 512;
/// How long a span waits for a batch to fill before it is sent anyway.
const DELAY: Duration = Duration::from_secs(1);
/// One export, retries included: past this the batch is dropped.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long shutdown waits for the spans still queued.
const FLUSH_BOUND: Duration = Duration::from_secs(2);
/// Dropped spans are logged at most this often.
const REPORT_EVERY: Duration = Duration::from_secs(60);

/// Where spans go and with what headers.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// The collector's base URL; `None` leaves it to the
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` variables.
    pub endpoint: Option<String>,
    /// Headers sent with every export (`OTEL_EXPORTER_OTLP_HEADERS` adds more).
    pub headers: Vec<(String, String)>,
}

/// What the exported spans say of the process: the service is the app
/// (or `atoll` when it hosts several), unless the standard variables say
/// otherwise ([`super::resource`]).
pub struct Service {
    pub name: String,
    pub version: Option<String>,
    pub apps: Vec<String>,
}

/// The export running in the background; [`Exporting::shutdown`] flushes it.
pub struct Exporting {
    stop: oneshot::Sender<()>,
    done: tokio::task::JoinHandle<()>,
}

impl Exporting {
    /// Sends what is queued, waiting [`FLUSH_BOUND`] at most: a collector
    /// that does not answer does not hold the process up.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        if tokio::time::timeout(FLUSH_BOUND, self.done).await.is_err() {
            tracing::warn!(target: "atoll::otlp", "spans still queued at shutdown were not all sent: the collector did not answer in time");
        }
    }
}

/// Whether an endpoint is configured, by `endpoint` or the environment.
pub fn configured(endpoint: Option<&str>) -> bool {
    endpoint.is_some() || env_set("OTEL_EXPORTER_OTLP_ENDPOINT") || env_set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
}

/// Starts exporting to the collector `config` names, and installs the
/// process's span sink. Needs a Tokio runtime.
pub fn start(config: &Config, service: Service) -> Result<Exporting, String> {
    let endpoint = match &config.endpoint {
        Some(url) => Some(traces_url(url).map_err(|e| format!("--otlp-endpoint {url:?}: {e}"))?),
        // The exporter reads these itself (adding /v1/traces to the first).
        None => None,
    };
    crate::http::use_ring_for_tls();
    let client = reqwest::Client::builder()
        .timeout(EXPORT_TIMEOUT)
        .user_agent(concat!("atoll/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the OTLP HTTP client: {e}"))?;
    let mut builder = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_http_client(client)
        .with_timeout(EXPORT_TIMEOUT)
        .with_headers(config.headers.iter().cloned().collect::<HashMap<_, _>>());
    if let Some(url) = &endpoint {
        builder = builder.with_endpoint(url.clone());
    }
    let resource = super::resource::attributes(
        &service,
        std::env::var(super::resource::OTEL_SERVICE_NAME).ok().as_deref(),
        std::env::var(super::resource::OTEL_RESOURCE_ATTRIBUTES).ok().as_deref(),
    )?;
    let service_name = resource
        .iter()
        .find(|(k, _)| k == "service.name")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let sampler = super::sampler::Sampler::from_variables(
        std::env::var(super::sampler::OTEL_TRACES_SAMPLER).ok().as_deref(),
        std::env::var(super::sampler::OTEL_TRACES_SAMPLER_ARG).ok().as_deref(),
    )?;
    let mut exporter = builder.build().map_err(|e| format!("cannot export spans: {e}"))?;
    exporter.set_resource(
        &Resource::builder_empty()
            .with_attributes(resource.into_iter().map(|(k, v)| KeyValue::new(k, v)))
            .build(),
    );
    super::sampler::install(sampler);
    let (queue, spans) = mpsc::channel(QUEUE);
    let lost = Arc::new(Lost::default());
    let full = Arc::new(Notify::new());
    super::install(Box::new(Queue {
        queue,
        full: full.clone(),
        lost: lost.clone(),
    }));
    let (stop, stopped) = oneshot::channel();
    let done = tokio::spawn(send_batches(spans, full, exporter, lost, stopped));
    tracing::info!(
        target: "atoll::otlp",
        endpoint = endpoint.as_deref().unwrap_or("(from OTEL_EXPORTER_OTLP_*)"),
        service = %service_name,
        sampler = %sampler,
        "exporting spans over OTLP"
    );
    Ok(Exporting { stop, done })
}

fn env_set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty())
}

/// `URL/v1/traces`, as OTLP/HTTP puts traces under a collector's base URL.
fn traces_url(url: &str) -> Result<String, String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
        return Err("expected an http:// or https:// URL with a host, such as http://localhost:4318".into());
    }
    if uri.query().is_some() {
        return Err("a query string is not allowed; give the collector's base URL".into());
    }
    Ok(format!("{}/v1/traces", url.trim_end_matches('/')))
}

/// `NAME=VALUE`, checked as an HTTP header here rather than skipped later.
pub fn parse_header(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not NAME=VALUE"))?;
    let name = name.trim();
    http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("{name:?} is not a header name"))?;
    http::HeaderValue::from_str(value).map_err(|_| format!("the value of {name:?} is not a valid header value"))?;
    Ok((name.to_string(), value.to_string()))
}

/// Spans dropped with the queue full since the last report: counted on the
/// request's path, so an atomic (the exporter's own losses are in [`Report`]).
#[derive(Default)]
struct Lost {
    queue_full: AtomicU64,
}

/// The process's span sink: a place in the queue, or a count.
struct Queue {
    queue: mpsc::Sender<Span>,
    /// Told when a batch's worth is waiting.
    full: Arc<Notify>,
    lost: Arc<Lost>,
}

impl SpanSink for Queue {
    fn record(&self, span: Span) {
        if self.queue.try_send(span).is_err() {
            self.lost.queue_full.fetch_add(1, Ordering::Relaxed);
            atoll_metrics::spans_dropped("queue_full", 1);
        } else if self.queue.max_capacity() - self.queue.capacity() >= BATCH {
            self.full.notify_one();
        }
    }
}

/// Sends what is queued whenever a batch's worth is waiting, or every
/// [`DELAY`]; on `stop`, what is queued, and returns. The queue is only
/// read with `try_recv`, never awaited: a request's send then wakes no
/// task, and a batch's worth wakes this one once.
async fn send_batches<E: SpanExporter>(
    mut spans: mpsc::Receiver<Span>,
    full: Arc<Notify>,
    exporter: E,
    lost: Arc<Lost>,
    mut stop: oneshot::Receiver<()>,
) {
    let scope = InstrumentationScope::builder("atoll")
        .with_version(env!("CARGO_PKG_VERSION"))
        .build();
    let mut report = Report::default();
    let mut batch: Vec<Span> = Vec::with_capacity(BATCH);
    let mut tick = tokio::time::interval(DELAY);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = full.notified() => {}
            _ = tick.tick() => {}
        }
        while take(&mut spans, &mut batch) > 0 {
            send(&exporter, &mut batch, &scope, &mut report).await;
        }
        report.log(&lost, false);
    }
    // Shutdown: what was queued before it, and no more.
    spans.close();
    while take(&mut spans, &mut batch) > 0 {
        send(&exporter, &mut batch, &scope, &mut report).await;
    }
    report.log(&lost, true);
}

/// Moves queued spans into `batch`, up to [`BATCH`]; how many it holds.
fn take(spans: &mut mpsc::Receiver<Span>, batch: &mut Vec<Span>) -> usize {
    while batch.len() < BATCH {
        match spans.try_recv() {
            Ok(span) => batch.push(span),
            Err(_) => break,
        }
    }
    batch.len()
}

async fn send<E: SpanExporter>(exporter: &E, batch: &mut Vec<Span>, scope: &InstrumentationScope, report: &mut Report) {
    let count = batch.len() as u64;
    let data = batch.drain(..).map(|s| span_data(s, scope)).collect();
    let error = match tokio::time::timeout(EXPORT_TIMEOUT, exporter.export(data)).await {
        Ok(Ok(())) => return,
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {}s", EXPORT_TIMEOUT.as_secs()),
    };
    report.failed += count;
    report.error = Some(error);
    atoll_metrics::spans_dropped("export_failed", count);
}

/// What was lost since the last log line, and when that was.
#[derive(Default)]
struct Report {
    failed: u64,
    error: Option<String>,
    last: Option<Instant>,
}

impl Report {
    /// One warning for the spans lost, at most every [`REPORT_EVERY`]
    /// (the first at once), or at `last` whatever the time.
    fn log(&mut self, lost: &Lost, last: bool) {
        if !last && self.last.is_some_and(|t| t.elapsed() < REPORT_EVERY) {
            return;
        }
        let queue_full = lost.queue_full.swap(0, Ordering::Relaxed);
        if queue_full == 0 && self.failed == 0 {
            return;
        }
        tracing::warn!(
            target: "atoll::otlp",
            dropped = queue_full + self.failed,
            queue_full,
            export_failed = self.failed,
            error = self.error.as_deref(),
            "spans were not exported: the collector is down or slow (logged at most once a minute)"
        );
        self.failed = 0;
        self.error = None;
        self.last = Some(Instant::now());
    }
}

/// An Atoll span as the SDK's record of a finished span.
fn span_data(span: Span, scope: &InstrumentationScope) -> SpanData {
    let context = SpanContext::new(
        TraceId::from(span.trace_id),
        SpanId::from(span.span_id),
        TraceFlags::SAMPLED,
        false,
        TraceState::default(),
    );
    let (parent, remote) = span.parent.unwrap_or((0, false));
    SpanData {
        span_context: context,
        parent_span_id: SpanId::from(parent),
        parent_span_is_remote: remote,
        span_kind: match span.kind {
            SpanKind::Server => opentelemetry::trace::SpanKind::Server,
            SpanKind::Internal => opentelemetry::trace::SpanKind::Internal,
            SpanKind::Consumer => opentelemetry::trace::SpanKind::Consumer,
            SpanKind::Client => opentelemetry::trace::SpanKind::Client,
        },
        name: span.name.into(),
        start_time: span.start,
        end_time: span.end,
        attributes: span
            .attributes
            .into_iter()
            .map(|(key, value)| match value {
                Value::Static(s) => KeyValue::new(key, s),
                Value::Shared(s) => KeyValue::new(key, opentelemetry::StringValue::from(s)),
                Value::Str(s) => KeyValue::new(key, s),
                Value::Int(n) => KeyValue::new(key, n),
            })
            .collect(),
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: match span.error {
            Some(message) => Status::error(message),
            None => Status::Unset,
        },
        instrumentation_scope: scope.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span() -> Span {
        let trace = crate::trace::TraceContext::start();
        super::super::Began::now().until_now(&trace, 1, SpanKind::Internal, "s".into())
    }

    #[test]
    fn a_full_queue_drops_and_counts_and_wakes_the_exporter_once_a_batch_waits() {
        let (queue, mut spans) = mpsc::channel(BATCH + 1);
        let (full, lost) = (Arc::new(Notify::new()), Arc::new(Lost::default()));
        let sink = Queue {
            queue,
            full: full.clone(),
            lost: lost.clone(),
        };
        for _ in 0..BATCH + 3 {
            sink.record(span());
        }
        assert_eq!(lost.queue_full.load(Ordering::Relaxed), 2, "dropped, never waited for");
        // Counted where an operator's alert can see it too (at least these
        // two: the registry is the process's).
        let metrics = atoll_metrics::render();
        let counted = metrics
            .lines()
            .find_map(|l| l.strip_prefix(r#"atoll_spans_dropped_total{reason="queue_full"} "#))
            .and_then(|n| n.parse::<u64>().ok());
        assert!(counted.is_some_and(|n| n >= 2), "{metrics}");
        let mut batch = Vec::new();
        assert_eq!(take(&mut spans, &mut batch), BATCH, "one batch at a time");
        batch.clear();
        assert_eq!(take(&mut spans, &mut batch), 1);
        // The exporter was told a batch was waiting.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let told = runtime.block_on(async { tokio::time::timeout(Duration::from_secs(1), full.notified()).await });
        assert!(told.is_ok());
    }

    #[test]
    fn losses_are_reported_at_most_once_a_minute_and_at_the_end() {
        let lost = Lost::default();
        let mut report = Report::default();
        lost.queue_full.store(3, Ordering::Relaxed);
        report.log(&lost, false);
        assert!(report.last.is_some(), "the first loss is reported at once");
        assert_eq!(lost.queue_full.load(Ordering::Relaxed), 0);
        lost.queue_full.store(5, Ordering::Relaxed);
        report.failed = 7;
        report.log(&lost, false);
        assert_eq!(
            (lost.queue_full.load(Ordering::Relaxed), report.failed),
            (5, 7),
            "kept for the next report"
        );
        report.log(&lost, true);
        assert_eq!((lost.queue_full.load(Ordering::Relaxed), report.failed), (0, 0));
    }

    #[test]
    fn the_endpoint_is_a_base_url_and_traces_go_under_it() {
        assert_eq!(
            traces_url("http://localhost:4318").unwrap(),
            "http://localhost:4318/v1/traces"
        );
        assert_eq!(
            traces_url("https://otel.example/base/").unwrap(),
            "https://otel.example/base/v1/traces"
        );
        for bad in ["localhost:4318", "ftp://x", "http://", "http://h/?q=1", "not a url"] {
            assert!(traces_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn headers_are_name_equals_value() {
        assert_eq!(
            parse_header("authorization=Bearer a=b").unwrap(),
            ("authorization".into(), "Bearer a=b".into())
        );
        assert!(parse_header("no-equals").unwrap_err().contains("NAME=VALUE"));
        assert!(parse_header("bad name=x").unwrap_err().contains("header name"));
        assert!(parse_header("x=line\nbreak").unwrap_err().contains("header value"));
    }
}
