//! What a waPC link call costs on top of the callee's own invocation.
//!
//! `cargo bench -p atoll-runtime --bench link`
//!
//! Three invocations of the unmodified `wapc-plain` guest, each timed on its
//! own (teardown included) and reported as percentiles, side by side in one
//! run:
//! - A: the callee alone (`ping`);
//! - B: the caller making a trivial host call (`request.link`);
//! - C: the caller making a linked call to the callee (`ping`).
//!
//! C − B is what the callee costs when reached through a link, to compare
//! with A; the difference is the link's own overhead (target: under 10 µs).

use atoll_runtime::{App, Engine, EngineConfig, RequestInfo, RuntimeConfig, Trigger};
use bytes::Bytes;
use std::sync::Arc;
use std::time::Instant;

fn main() {
    let quick = std::env::args().any(|a| a == "--test") || std::env::var_os("ATOLL_BENCH_QUICK").is_some();
    let runs = if quick { 200 } else { 20_000 };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let plain = atoll_testkit::guest_path("wapc-plain").display().to_string();
        std::fs::write(
            dir.path().join("atoll.toml"),
            format!(
                "[app]\nname = \"bench\"\n\n[functions.caller]\nsource = \"{plain}\"\nlinks = [\"callee\"]\n\n[functions.callee]\nsource = \"{plain}\"\n"
            ),
        )
        .unwrap();
        let engine = Engine::new(EngineConfig {
            cache_dir: None,
            max_instances: 16,
            ..EngineConfig::default()
        })
        .unwrap();
        let app = Arc::new(App::load(dir.path(), &engine, &RuntimeConfig::default()).await.unwrap());
        println!("link call cost: p50 / p99 in microseconds over {runs} invocations (teardown included)");
        if cfg!(debug_assertions) {
            println!("UNOPTIMISED debug build: these figures only show the bench runs; measure with `cargo bench`");
        }
        let a = measure(&app, "callee", "ping", "", runs).await;
        let b = measure(&app, "caller", "host", "request:link:", runs).await;
        let c = measure(&app, "caller", "host", "callee:ping:", runs).await;
        println!("{:<48} {:>16}", "A  callee alone", pct(&a));
        println!("{:<48} {:>16}", "B  caller, trivial host call", pct(&b));
        println!("{:<48} {:>16}", "C  caller, linked call to the callee", pct(&c));
        let p50 = |v: &[u32]| v[v.len() / 2] as f64 / 1000.0;
        println!(
            "the callee through a link (C − B): {:.1} µs at p50, against {:.1} µs alone (A): the link adds {:.1} µs",
            p50(&c) - p50(&b),
            p50(&a),
            p50(&c) - p50(&b) - p50(&a)
        );
    });
}

async fn measure(app: &Arc<App>, function: &str, op: &str, payload: &str, runs: usize) -> Vec<u32> {
    let trigger = Trigger::new("bench", RequestInfo::default());
    let mut times = Vec::with_capacity(runs);
    for i in 0..runs + runs / 10 {
        let started = Instant::now();
        let (mut response, mut spent) = Default::default();
        let out = app
            .call(
                function,
                op,
                Bytes::from(payload.to_string()),
                &trigger,
                &mut response,
                &mut spent,
            )
            .await
            .expect("the bench's calls succeed");
        drop(spent);
        let took = started.elapsed().as_nanos() as u32;
        assert!(!out.starts_with(b"ERR"), "{}", String::from_utf8_lossy(&out));
        if i >= runs / 10 {
            times.push(took);
        }
    }
    times.sort_unstable();
    times
}

fn pct(v: &[u32]) -> String {
    format!(
        "{:.1} / {:.1}",
        v[v.len() / 2] as f64 / 1000.0,
        v[v.len() * 99 / 100] as f64 / 1000.0
    )
}
