//! Atoll's Prometheus metrics: one registry for the process, recorded by
//! every layer (HTTP trigger, pipelines, host calls, schedules, messages,
//! deploys) through the functions here, and rendered in the Prometheus text
//! format for `GET /-/metrics`.
//!
//! Process-wide rather than passed around: a host call deep inside the
//! capability layer records without every layer above carrying a handle,
//! and one process serves one metrics endpoint. [`disable`] turns every
//! recording into one relaxed atomic load (`atoll serve --no-metrics`).
//!
//! Labels are bounded by construction: apps are the ones loaded, routes
//! are the manifest's route
//! patterns, never request paths; functions, schedules and topics come from
//! the manifest; a namespace a guest names that Atoll does not know is
//! recorded as `unknown`, so no guest or client can grow the series.

mod outcome;

pub use outcome::{HostCallOutcome, InvocationOutcome};

use prometheus::core::{Collector, MetricVec, MetricVecBuilder};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::collections::HashMap;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Request and invocation durations: from a fresh instance's microseconds to
/// a slow pipeline's seconds.
const DURATION_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0, 30.0,
];

/// Backend calls: an embedded store answers in microseconds, a remote one in
/// milliseconds.
const BACKEND_BUCKETS: &[f64] = &[
    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 5.0,
];

struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    invocations: IntCounterVec,
    invocation_duration: HistogramVec,
    instances_in_use: IntGauge,
    instance_capacity: IntGauge,
    host_calls: IntCounterVec,
    host_call_duration: HistogramVec,
    schedule_runs: IntCounterVec,
    messages: IntCounterVec,
    message_wait: HistogramVec,
    deploys: IntCounterVec,
    spans_dropped: IntCounterVec,
    build_info: IntGaugeVec,
    function_slots: IntGaugeVec,
    function_slots_in_use: IntGaugeVec,
    function_slot_waiters: IntGaugeVec,
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("a valid metric");
    registry.register(Box::new(c.clone())).expect("registered once");
    c
}

fn histogram(registry: &Registry, name: &str, help: &str, labels: &[&str], buckets: &[f64]) -> HistogramVec {
    let h =
        HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets.to_vec()), labels).expect("a valid metric");
    registry.register(Box::new(h.clone())).expect("registered once");
    h
}

fn gauges(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("a valid metric");
    registry.register(Box::new(g.clone())).expect("registered once");
    g
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("a valid metric");
    registry.register(Box::new(g.clone())).expect("registered once");
    g
}

impl Metrics {
    fn new() -> Metrics {
        let r = Registry::new();
        let build_info = IntGaugeVec::new(
            Opts::new(
                "atoll_build_info",
                "Always 1; the labels say which Atoll and which Wasmtime run.",
            ),
            &["version", "wasmtime"],
        )
        .expect("a valid metric");
        r.register(Box::new(build_info.clone())).expect("registered once");
        Metrics {
            http_requests: counter(
                &r,
                "atoll_http_requests_total",
                "HTTP requests answered, by app, route pattern, method and status class.",
                &["app", "route", "method", "status"],
            ),
            http_duration: histogram(
                &r,
                "atoll_http_request_duration_seconds",
                "Time from a request's arrival to its response head, by app and route pattern.",
                &["app", "route"],
                DURATION_BUCKETS,
            ),
            invocations: counter(
                &r,
                "atoll_invocations_total",
                "Function invocations, each in a fresh instance, by app, function, ABI and outcome.",
                &["app", "function", "abi", "outcome"],
            ),
            invocation_duration: histogram(
                &r,
                "atoll_invocation_duration_seconds",
                "Time from instantiation to the function's answer, by app, function and ABI.",
                &["app", "function", "abi"],
                DURATION_BUCKETS,
            ),
            instances_in_use: gauge(&r, "atoll_instances_in_use", "Instances running an invocation now."),
            instance_capacity: gauge(
                &r,
                "atoll_instance_capacity",
                "Instances the pool holds (--max-instances): invocations beyond it fail with no capacity.",
            ),
            host_calls: counter(
                &r,
                "atoll_host_calls_total",
                "Host calls by namespace and outcome (ok, refused: not granted or unknown, failed: the backend or the payload).",
                &["namespace", "outcome"],
            ),
            host_call_duration: histogram(
                &r,
                "atoll_host_call_duration_seconds",
                "Time host calls to a backend took (kv, http, msg, files, sql, links), by namespace.",
                &["namespace"],
                BACKEND_BUCKETS,
            ),
            schedule_runs: counter(
                &r,
                "atoll_schedule_runs_total",
                "Schedule runs by schedule and outcome (ok, failed).",
                &["app", "schedule", "outcome"],
            ),
            messages: counter(
                &r,
                "atoll_subscription_messages_total",
                "Messages handled by subscriptions, by the subscription's topic pattern and outcome (ok, failed).",
                &["app", "topic", "outcome"],
            ),
            message_wait: histogram(
                &r,
                "atoll_subscription_wait_seconds",
                "Time a message waited after it arrived until its pipeline started (the subscription's lag), by topic pattern.",
                &["app", "topic"],
                DURATION_BUCKETS,
            ),
            deploys: counter(
                &r,
                "atoll_deploys_total",
                "New versions of the app loaded while serving (PUT /-/bundle, --watch), by result (swapped, refused).",
                &["result"],
            ),
            spans_dropped: counter(
                &r,
                "atoll_spans_dropped_total",
                "Spans not exported (--otlp-endpoint), by reason: queue_full (the collector is slow or down and the queue filled), export_failed (the collector refused a batch or did not answer).",
                &["reason"],
            ),
            function_slots: gauges(
                &r,
                "atoll_function_slots",
                "A function's max_concurrency, for functions that set one.",
                &["app", "function"],
            ),
            function_slots_in_use: gauges(
                &r,
                "atoll_function_slots_in_use",
                "Invocations holding one of a limited function's slots now.",
                &["app", "function"],
            ),
            function_slot_waiters: gauges(
                &r,
                "atoll_function_slot_waiters",
                "Calls waiting for a slot of a limited function now (refused ones count as no_capacity invocations).",
                &["app", "function"],
            ),
            build_info,
            registry: r,
        }
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
static ENABLED: AtomicBool = AtomicBool::new(true);

fn metrics() -> Option<&'static Metrics> {
    ENABLED.load(Ordering::Relaxed).then(|| &*METRICS)
}

/// Stops recording, for the whole process, from now on.
pub fn disable() {
    ENABLED.store(false, Ordering::Relaxed);
}

pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Everything recorded so far, in the Prometheus text format ([`CONTENT_TYPE`]).
pub fn render() -> String {
    let mut out = Vec::with_capacity(16 << 10);
    let _ = TextEncoder::new().encode(&METRICS.registry.gather(), &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// Which Atoll and which Wasmtime this process runs, and the pool's size.
pub fn started(version: &str, wasmtime: &str, instance_capacity: usize) {
    if let Some(m) = metrics() {
        m.build_info.with_label_values(&[version, wasmtime]).set(1);
        m.instance_capacity.set(instance_capacity as i64);
    }
}

/// One HTTP request answered. `app` is the app it went to (`(none)` for
/// none), `route` the matched route's pattern (or a fixed word for
/// requests that matched none).
pub fn http_request(app: &str, route: &str, method: &str, status: u16, elapsed: Duration) {
    if let Some(m) = metrics() {
        let method = match method {
            "GET" | "HEAD" | "POST" | "PUT" | "DELETE" | "PATCH" | "OPTIONS" => method,
            _ => "other",
        };
        let class = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        m.http_requests.with_label_values(&[app, route, method, class]).inc();
        m.http_duration
            .with_label_values(&[app, route])
            .observe(elapsed.as_secs_f64());
    }
}

/// One invocation of `app`'s `function` finished (or failed to start).
pub fn invocation(app: &str, function: &str, abi: &str, outcome: InvocationOutcome, elapsed: Duration) {
    if let Some(m) = metrics() {
        m.invocations
            .with_label_values(&[app, function, abi, outcome.label()])
            .inc();
        m.invocation_duration
            .with_label_values(&[app, function, abi])
            .observe(elapsed.as_secs_f64());
    }
}

/// Counts an instance in use until the returned guard is dropped.
pub fn instance_in_use() -> InUse {
    let counted = metrics().map(|m| {
        m.instances_in_use.inc();
        &m.instances_in_use
    });
    InUse(counted)
}

/// An instance counted in `atoll_instances_in_use` while this lives.
pub struct InUse(Option<&'static IntGauge>);

impl Drop for InUse {
    fn drop(&mut self) {
        if let Some(g) = self.0 {
            g.dec();
        }
    }
}

/// `app`'s `function`, limited to `limit` invocations at once (`max_concurrency`).
pub fn function_slots(app: &str, function: &str, limit: u32) {
    if let Some(m) = metrics() {
        m.function_slots
            .with_label_values(&[app, function])
            .set(i64::from(limit));
    }
}

/// A limited function's slots in use went up or down by `delta`.
pub fn function_slots_in_use(app: &str, function: &str, delta: i64) {
    if let Some(m) = metrics() {
        m.function_slots_in_use.with_label_values(&[app, function]).add(delta);
    }
}

/// Calls waiting for a limited function's slot went up or down by `delta`.
pub fn function_slot_waiters(app: &str, function: &str, delta: i64) {
    if let Some(m) = metrics() {
        m.function_slot_waiters.with_label_values(&[app, function]).add(delta);
    }
}

/// One host call answered. Backend namespaces also record their latency.
pub fn host_call(namespace: &str, outcome: HostCallOutcome, elapsed: Duration) {
    if let Some(m) = metrics() {
        m.host_calls.with_label_values(&[namespace, outcome.label()]).inc();
        if matches!(namespace, "kv" | "http" | "msg" | "files" | "sql" | "link") {
            m.host_call_duration
                .with_label_values(&[namespace])
                .observe(elapsed.as_secs_f64());
        }
    }
}

/// One run of a schedule.
pub fn schedule_run(app: &str, schedule: &str, ok: bool) {
    if let Some(m) = metrics() {
        m.schedule_runs
            .with_label_values(&[app, schedule, if ok { "ok" } else { "failed" }])
            .inc();
    }
}

/// A message arrived `waited` ago and its pipeline is starting now.
pub fn message_started(app: &str, topic: &str, waited: Duration) {
    if let Some(m) = metrics() {
        m.message_wait
            .with_label_values(&[app, topic])
            .observe(waited.as_secs_f64());
    }
}

/// One message handled by a subscription.
pub fn message_handled(app: &str, topic: &str, ok: bool) {
    if let Some(m) = metrics() {
        m.messages
            .with_label_values(&[app, topic, if ok { "ok" } else { "failed" }])
            .inc();
    }
}

/// A new version of the app was loaded and swapped in, or refused.
pub fn deploy(swapped: bool) {
    if let Some(m) = metrics() {
        m.deploys
            .with_label_values(&[if swapped { "swapped" } else { "refused" }])
            .inc();
    }
}

/// `n` spans that will not reach the collector, for `reason`
/// (`queue_full`, `export_failed`).
pub fn spans_dropped(reason: &'static str, n: u64) {
    if let Some(m) = metrics() {
        m.spans_dropped.with_label_values(&[reason]).inc_by(n);
    }
}

/// Drops every series labelled with `app`, for an app removed from a
/// running server (`DELETE /-/apps/NAME`): otherwise a server that hosts
/// apps coming and going would report each one it ever served, frozen,
/// until it restarts. A request of the app still finishing when this runs
/// can bring one of its series back.
pub fn forget_app(app: &str) {
    let Some(m) = metrics() else {
        return;
    };
    forget(&m.http_requests, app);
    forget(&m.http_duration, app);
    forget(&m.invocations, app);
    forget(&m.invocation_duration, app);
    forget(&m.schedule_runs, app);
    forget(&m.messages, app);
    forget(&m.message_wait, app);
    forget(&m.function_slots, app);
    forget(&m.function_slots_in_use, app);
    forget(&m.function_slot_waiters, app);
}

/// Removes the series of `vec` whose `app` label is `app`. The vec has no
/// removal by one label, so its series are listed and removed one by one.
fn forget<T: MetricVecBuilder>(vec: &MetricVec<T>, app: &str) {
    for family in vec.collect() {
        for series in family.get_metric() {
            let labels: HashMap<&str, &str> = series.get_label().iter().map(|l| (l.name(), l.value())).collect();
            if labels.get("app") == Some(&app) {
                let _ = vec.remove(&labels);
            }
        }
    }
}

#[cfg(test)]
mod tests;
