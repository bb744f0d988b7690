//! Fresh-instance invocation cost, per invocation, as percentiles.
//!
//! `cargo bench -p atoll-wapc --bench invoke`
//!
//! Criterion's estimates average batches of iterations; the targets here are
//! about single invocations (the p50 of instantiate + call, and of teardown),
//! so each invocation is timed on its own and the distribution reported.
//! Compared side by side in one run: init snapshotted at load vs init run on
//! every instance, for a plain `wapc-guest` guest (`ping` with an empty
//! payload) and for the SDK guest.

use atoll_caps::{Grants, Invocation, RequestInfo};
use atoll_engine::{Engine, EngineConfig, Limits};
use atoll_wapc::WapcAbi;
use std::sync::Arc;
use std::time::{Duration, Instant};

const WARMUP: usize = 2_000;
const RUNS: usize = 20_000;

struct Sample {
    path: Vec<u32>,
    teardown: Vec<u32>,
    whole: Vec<u32>,
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs us once quickly.
    let quick = std::env::args().any(|a| a == "--test") || std::env::var_os("ATOLL_BENCH_QUICK").is_some();
    let runs = if quick { 200 } else { RUNS };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    println!("fresh instance per invocation: p50 / p99 in microseconds over {runs} invocations");
    // `cargo test --benches` (the test script's quick run) builds without
    // optimisations: its figures are tens of times the README's, which come
    // from `cargo bench`. Say so beside the figures, not only in the docs.
    if cfg!(debug_assertions) {
        println!("UNOPTIMISED debug build: these figures only show the bench runs; measure with `cargo bench`");
    }
    println!(
        "{:<34} {:>16} {:>16} {:>16}",
        "guest / init", "instantiate+call", "teardown", "whole"
    );
    for (guest, op) in [("wapc-plain", "ping"), ("sdk-fixture", "greet")] {
        for preinit in [true, false] {
            let s = rt.block_on(measure(guest, op, preinit, runs));
            let label = format!("{guest} / {}", if preinit { "snapshot" } else { "per instance" });
            println!(
                "{label:<34} {:>16} {:>16} {:>16}",
                pct(&s.path),
                pct(&s.teardown),
                pct(&s.whole)
            );
        }
    }
}

async fn measure(guest: &str, op: &str, preinit: bool, runs: usize) -> Sample {
    let engine = Engine::new(EngineConfig {
        cache_dir: None,
        preinitialize: preinit,
        max_instances: 16,
        ..EngineConfig::default()
    })
    .unwrap();
    let wasm = atoll_testkit::guest(guest);
    let limits = Limits {
        timeout: Duration::from_secs(5),
        memory: 64 << 20,
    };
    let f = WapcAbi::new(&engine)
        .unwrap()
        .load(guest, &wasm, limits, 1 << 20)
        .await
        .unwrap();
    let grants = Arc::new(Grants::default());
    let request = Arc::new(RequestInfo::default());
    let request_id: Arc<str> = Arc::from("bench");
    let function: Arc<str> = Arc::from(guest);
    let mut sample = Sample {
        path: Vec::with_capacity(runs),
        teardown: Vec::with_capacity(runs),
        whole: Vec::with_capacity(runs),
    };
    for i in 0..WARMUP + runs {
        let inv = Invocation::new(function.clone(), request_id.clone(), grants.clone(), request.clone());
        let t0 = Instant::now();
        let out = f.invoke(inv, op, bytes::Bytes::new()).await;
        let t1 = Instant::now();
        assert!(out.result.is_ok(), "{:?}", out.result);
        drop(out);
        let t2 = Instant::now();
        if i >= WARMUP {
            sample.path.push(nanos(t1 - t0));
            sample.teardown.push(nanos(t2 - t1));
            sample.whole.push(nanos(t2 - t0));
        }
    }
    sample
}

fn nanos(d: Duration) -> u32 {
    d.as_nanos().min(u32::MAX as u128) as u32
}

fn pct(v: &[u32]) -> String {
    let mut v = v.to_vec();
    v.sort_unstable();
    let at = |q: f64| v[((v.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
    format!("{:.1} / {:.1}", at(0.5), at(0.99))
}
