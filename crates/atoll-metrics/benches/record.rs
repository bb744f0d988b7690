//! What the metrics cost one request: everything a waPC request records
//! (its HTTP line, one invocation, an instance counted in use, one kv host
//! call), timed on and then off (`--no-metrics`) in the same run.
//!
//! `cargo bench --workspace --bench record`

use atoll_metrics::{HostCallOutcome, InvocationOutcome};
use std::time::{Duration, Instant};

fn one_request() {
    let in_use = atoll_metrics::instance_in_use();
    atoll_metrics::host_call("kv", HostCallOutcome::Ok, Duration::from_micros(3));
    drop(in_use);
    atoll_metrics::invocation(
        "counter",
        "counter",
        "wapc",
        InvocationOutcome::Ok,
        Duration::from_micros(7),
    );
    atoll_metrics::http_request("counter", "GET /count", "GET", 200, Duration::from_micros(20));
}

/// Nanoseconds per request, the best of five batches.
fn measure(runs: u32) -> f64 {
    (0..5)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..runs {
                one_request();
            }
            started.elapsed().as_nanos() as f64 / runs as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--test") || std::env::var_os("ATOLL_BENCH_QUICK").is_some();
    let runs = if quick { 1_000 } else { 1_000_000 };
    if cfg!(debug_assertions) {
        println!("UNOPTIMISED debug build: these figures only show the bench runs; measure with `cargo bench`");
    }
    let on = measure(runs);
    atoll_metrics::disable();
    let off = measure(runs);
    println!("metrics recorded per waPC request (1 HTTP request, 1 invocation, 1 instance, 1 kv call):");
    println!("  on:  {on:>7.0} ns");
    println!("  off: {off:>7.0} ns");
    // The README's per-request server CPU for the waPC hello is about 16 µs.
    println!(
        "  that is {:.1}% of 16 µs of server CPU per request",
        (on - off) / 16_000.0 * 100.0
    );
}
