//! What OTLP span export costs a request: the spans of a one-function
//! request (its server span and its invocation span), built and queued as
//! the HTTP server and the pipeline do, first with export off (nothing
//! installed: what every request pays) and then on, exporting for real to
//! a collector on loopback, in the same run.
//!
//! Two figures with export on: the request's own cost (building and
//! queueing its spans, on the request's thread), and the background cost
//! (converting, encoding and sending them, on the exporter's task: the
//! process's CPU time less the requests' thread's), both per request.
//!
//! `cargo bench --workspace --bench spans`

use atoll_caps::spans::otlp::{self, Service};
use atoll_caps::spans::{self, Began, SpanKind};
use atoll_caps::trace::{TraceContext, new_span_id};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Requests whose spans fill one export batch (512 spans), so each round
/// is sent at once rather than after the exporter's delay.
const ROUND: usize = 256;

/// The spans of one request, as `atoll-http` and `atoll-runtime` build
/// them; `started` stands for the `Instant` both already take for their
/// metrics.
fn one_request(trace: &TraceContext, started: Instant) {
    // What the server holds: the loaded app's and function's names.
    static NAMES: std::sync::LazyLock<(Arc<str>, Arc<str>)> =
        std::sync::LazyLock::new(|| (Arc::from("hello"), Arc::from("hello")));
    let (app, function) = &*NAMES;
    if spans::wanted(Some(trace)) {
        let began = Began::ago(started.elapsed());
        let mut span = began.until_now(trace, new_span_id(), SpanKind::Internal, "invoke hello".into());
        span.parent = Some((trace.span_id(), false));
        span.attributes.push(("atoll.app", app.clone().into()));
        span.attributes.push(("atoll.function", function.clone().into()));
        span.attributes.push(("atoll.abi", "wapc".into()));
        span.attributes.push(("atoll.op", String::from("hello").into()));
        span.attributes.push(("atoll.outcome", "ok".into()));
        spans::record(span);
    }
    if spans::wanted(Some(trace)) {
        let began = Began::ago(started.elapsed());
        let mut span = began.until_now(trace, trace.span_id(), SpanKind::Server, "GET /hello".into());
        span.parent = trace.parent_span_id().map(|p| (p, true));
        span.attributes
            .push(("http.request.method", String::from("GET").into()));
        span.attributes.push(("url.path", String::from("/hello").into()));
        span.attributes.push(("http.response.status_code", 200i64.into()));
        span.attributes.push(("http.route", String::from("/hello").into()));
        span.attributes.push(("atoll.app", app.clone().into()));
        spans::record(span);
    }
}

/// A collector that reads each export and answers 200 on a kept-alive
/// connection; the number of exports it has taken.
fn collector() -> (String, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let exports = Arc::new(AtomicU64::new(0));
    let counted = exports.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let counted = counted.clone();
            std::thread::spawn(move || {
                let stream = stream.unwrap();
                let mut writer = stream.try_clone().unwrap();
                let mut reader = BufReader::new(stream);
                loop {
                    let mut length = 0;
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    loop {
                        line.clear();
                        reader.read_line(&mut line).unwrap();
                        if line.trim_end().is_empty() {
                            break;
                        }
                        if let Some((name, value)) = line.split_once(':')
                            && name.eq_ignore_ascii_case("content-length")
                        {
                            length = value.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    writer
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n",
                        )
                        .unwrap();
                    counted.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    (addr, exports)
}

/// CPU time of the process, and of the calling thread.
fn cpu() -> (Duration, Duration) {
    let usage = |who| {
        // SAFETY: getrusage only writes the struct it is given.
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(who, &mut u) };
        let t = |tv: libc::timeval| Duration::new(tv.tv_sec as u64, tv.tv_usec as u32 * 1000);
        t(u.ru_utime) + t(u.ru_stime)
    };
    (usage(libc::RUSAGE_SELF), usage(libc::RUSAGE_THREAD))
}

/// Nanoseconds per request with nothing installed, the best of five batches.
fn off(runs: usize, trace: &TraceContext) -> f64 {
    (0..5)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..runs {
                one_request(std::hint::black_box(trace), started);
            }
            started.elapsed().as_nanos() as f64 / runs as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--test") || std::env::var_os("ATOLL_BENCH_QUICK").is_some();
    let rounds = if quick { 4 } else { 400 };
    if cfg!(debug_assertions) {
        println!("UNOPTIMISED debug build: these figures only show the bench runs; measure with `cargo bench`");
    }
    let trace = TraceContext::start();
    let off = off(if quick { 1_000 } else { 1_000_000 }, &trace);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (addr, exports) = collector();
    let config = otlp::Config {
        endpoint: Some(format!("http://{addr}")),
        headers: Vec::new(),
    };
    let service = Service {
        name: "hello".into(),
        version: None,
        apps: vec!["hello".into()],
    };
    let exporting = runtime.block_on(async { otlp::start(&config, service) }).unwrap();
    let (process_before, thread_before) = cpu();
    let mut recording = Duration::ZERO;
    for round in 0..rounds {
        let started = Instant::now();
        for _ in 0..ROUND {
            one_request(std::hint::black_box(&trace), started);
        }
        recording += started.elapsed();
        // Wait for the batch to be taken, so the queue never overflows.
        let deadline = Instant::now() + Duration::from_secs(10);
        while exports.load(Ordering::Relaxed) < round as u64 + 1 {
            assert!(Instant::now() < deadline, "the exporter sent nothing in 10 s");
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    let (process_after, thread_after) = cpu();
    runtime.block_on(exporting.shutdown());
    let requests = (rounds * ROUND) as f64;
    let on = recording.as_nanos() as f64 / requests;
    let background = ((process_after - process_before) - (thread_after - thread_before)).as_nanos() as f64 / requests;
    println!(
        "OTLP export, per request of one function (2 spans), {} requests:",
        requests as u64
    );
    println!("  off:                          {off:>7.0} ns (nothing installed)");
    println!("  on, on the request's path:    {on:>7.0} ns (building and queueing its 2 spans)");
    println!(
        "  on, in the background:        {background:>7.0} ns CPU (convert, encode, send, and the collector reading)"
    );
}
