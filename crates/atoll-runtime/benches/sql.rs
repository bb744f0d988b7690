//! A point query through a waPC function, against the same function's
//! key-value read: the caps fixture's `sqlget` (`sql::query("get_user",
//! [1])`, SQLite in the data directory) and `kvget` (`kv::get("user:1")`,
//! embedded redb), each invocation timed on its own, fresh instance and
//! teardown included, interleaved so both see the same machine.
//!
//! `cargo bench --workspace --bench sql_invoke` (target: sql at least 0.5x
//! kv in invocations per second)

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
        let caps = atoll_testkit::guest_path("caps-fixture").display().to_string();
        std::fs::create_dir_all(dir.path().join("migrations")).unwrap();
        std::fs::write(
            dir.path().join("migrations/001.sql"),
            "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\n\
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000) \
             INSERT INTO users SELECT i, 'user ' || i FROM n;\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("atoll.toml"),
            format!(
                "[app]\nname = \"bench\"\n\n[queries.get_user]\nsql = \"SELECT id, name FROM users WHERE id = $1\"\n\n\
                 [functions.both]\nsource = \"{caps}\"\ncapabilities = [\"kv\", \"sql\"]\nqueries = [\"get_user\"]\n"
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
        call(&app, "kv", r#"{"op": "set", "key": "user:1", "value": "user 1"}"#).await;
        assert_eq!(call(&app, "kvget", "").await, call(&app, "sqlget", "").await);
        println!("a waPC function reading one row: p50 / p99 in microseconds over {runs} invocations each (teardown included)");
        if cfg!(debug_assertions) {
            println!("UNOPTIMISED debug build: these figures only show the bench runs; measure with `cargo bench`");
        }
        let (mut kv, mut sql) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
        for i in 0..runs + runs / 10 {
            let a = timed(&app, "kvget").await;
            let b = timed(&app, "sqlget").await;
            if i >= runs / 10 {
                kv.push(a);
                sql.push(b);
            }
        }
        let mean = |v: &[u32]| v.iter().map(|&t| t as f64).sum::<f64>() / v.len() as f64 / 1000.0;
        kv.sort_unstable();
        sql.sort_unstable();
        println!("{:<44} {:>16}   mean {:.1}", "kv.get (redb)", pct(&kv), mean(&kv));
        println!("{:<44} {:>16}   mean {:.1}", "sql.query point select (SQLite)", pct(&sql), mean(&sql));
        println!(
            "sql / kv in invocations per second (mean): {:.2}x",
            mean(&kv) / mean(&sql)
        );
    });
}

async fn call(app: &Arc<App>, op: &str, payload: &str) -> Vec<u8> {
    let trigger = Trigger::new("bench", RequestInfo::default());
    let (mut response, mut spent) = Default::default();
    app.call(
        "both",
        op,
        Bytes::from(payload.to_string()),
        &trigger,
        &mut response,
        &mut spent,
    )
    .await
    .expect("the bench's calls succeed")
    .to_vec()
}

async fn timed(app: &Arc<App>, op: &str) -> u32 {
    let started = Instant::now();
    let out = call(app, op, "").await;
    let took = started.elapsed().as_nanos() as u32;
    assert_eq!(out, b"user 1");
    took
}

fn pct(v: &[u32]) -> String {
    format!(
        "{:.1} / {:.1}",
        v[v.len() / 2] as f64 / 1000.0,
        v[v.len() * 99 / 100] as f64 / 1000.0
    )
}
