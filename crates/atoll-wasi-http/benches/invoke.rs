//! Fresh-instance invocation cost of a wasi:http component, per
//! invocation, as percentiles: the same measure as atoll-wapc's `invoke`
//! bench, so the two ABIs compare in one table.
//!
//! `cargo bench -p atoll-wasi-http --bench invoke`
//!
//! Rows: the smallest hello component (`wasi-http-old`), and the test
//! component (`wasi-http-rust`, which also imports the WASI state
//! interfaces); each with the request handed over whole and the response
//! read back whole, as a pipeline step does, and with the empty WASI
//! context the sandbox gives (no stderr pipe, no preopens).

use atoll_caps::{Grants, Invocation, RequestInfo};
use atoll_engine::{Engine, EngineConfig, Limits};
use atoll_wasi_http::WasiHttpAbi;
use std::sync::Arc;
use std::time::{Duration, Instant};

const WARMUP: usize = 2_000;
const RUNS: usize = 20_000;

fn main() {
    let quick = std::env::args().any(|a| a == "--test") || std::env::var_os("ATOLL_BENCH_QUICK").is_some();
    let runs = if quick { 200 } else { RUNS };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    println!("wasi:http component, fresh instance per invocation: p50 / p99 in microseconds over {runs} invocations");
    if cfg!(debug_assertions) {
        println!("UNOPTIMISED debug build: these figures only show the bench runs; measure with `cargo bench`");
    }
    println!(
        "{:<34} {:>16} {:>16} {:>16}",
        "component", "handle", "teardown", "whole"
    );
    for guest in ["wasi-http-old", "wasi-http-rust"] {
        let (path, teardown, whole) = rt.block_on(measure(guest, runs));
        println!(
            "{guest:<34} {:>16} {:>16} {:>16}",
            pct(&path),
            pct(&teardown),
            pct(&whole)
        );
    }
}

async fn measure(guest: &str, runs: usize) -> (Vec<u32>, Vec<u32>, Vec<u32>) {
    let engine = Engine::new(EngineConfig {
        cache_dir: None,
        max_instances: 16,
        ..EngineConfig::default()
    })
    .unwrap();
    let wasm = atoll_testkit::guest(guest);
    let limits = Limits {
        timeout: Duration::from_secs(5),
        memory: 64 << 20,
    };
    let f = WasiHttpAbi::new(&engine).unwrap().load(&wasm, limits, 1 << 20).unwrap();
    let grants = Arc::new(Grants::default());
    let request = Arc::new(RequestInfo {
        uri: "/hello".parse().unwrap(),
        ..RequestInfo::default()
    });
    let (request_id, function): (Arc<str>, Arc<str>) = (Arc::from("bench"), Arc::from(guest));
    let (mut path, mut teardown, mut whole) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..WARMUP + runs {
        let inv = Invocation::new(function.clone(), request_id.clone(), grants.clone(), request.clone());
        let t0 = Instant::now();
        let out = f.invoke(inv, bytes::Bytes::new(), None).await;
        let t1 = Instant::now();
        assert!(out.result.is_ok(), "{:?}", out.result);
        drop(out);
        let t2 = Instant::now();
        if i >= WARMUP {
            path.push(nanos(t1 - t0));
            teardown.push(nanos(t2 - t1));
            whole.push(nanos(t2 - t0));
        }
    }
    (path, teardown, whole)
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
