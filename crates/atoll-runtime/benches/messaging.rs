//! Messages end to end on NATS: publish → a subscription's pipeline (the
//! unmodified `wapc-plain` guest echoing the message, in a fresh instance)
//! → `reply_to`, with one node and with three nodes of the same app (in
//! this process, so they share its cores), against a real
//! `nats-server -js` started by the bench.
//!
//! `cargo bench --workspace --bench messaging`

use atoll_caps::msg::{Broker, NatsBroker};
use atoll_manifest::TopicPattern;
use atoll_runtime::{App, Engine, EngineConfig, RuntimeConfig, RuntimeConfigFile};
use atoll_testkit::NatsServer;
use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() {
    let quick = std::env::args().any(|a| a == "--test") || std::env::var_os("ATOLL_BENCH_QUICK").is_some();
    let messages = if quick { 300 } else { 20_000 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let server = NatsServer::start();
        let dir = tempfile::tempdir().unwrap();
        let plain = atoll_testkit::guest_path("wapc-plain").display().to_string();
        std::fs::write(
            dir.path().join("atoll.toml"),
            format!(
                "[app]\nname = \"bench\"\n\n[functions.echo]\nsource = \"{plain}\"\n\n\
                 [[subscriptions]]\ntopic = \"bench.in\"\nsteps = [{{ fn = \"echo\", op = \"ping\" }}]\nreply_to = \"bench.out\"\n"
            ),
        )
        .unwrap();
        let runtime = dir.path().join("runtime.toml");
        std::fs::write(&runtime, format!("[msg]\nbackend = \"nats\"\nurl = \"{}\"\n", server.url())).unwrap();
        let config = RuntimeConfig {
            file: RuntimeConfigFile::load(&runtime).unwrap(),
            ..RuntimeConfig::default()
        };
        let engine = Engine::new(EngineConfig {
            cache_dir: None,
            max_instances: 512,
            ..EngineConfig::default()
        })
        .unwrap();
        println!("NATS: publish → subscription pipeline (waPC echo) → reply_to, {messages} messages of 64 bytes");
        if cfg!(debug_assertions) {
            println!("UNOPTIMISED debug build: these figures only show the bench runs; measure with `cargo bench`");
        }
        for nodes in [1, 3] {
            let mut running = Vec::new();
            for _ in 0..nodes {
                let app = Arc::new(App::load(dir.path(), &engine, &config).await.unwrap());
                running.push((atoll_triggers::start(app.clone()).await.unwrap(), app));
            }
            let (rate, p50, p99) = measure(&server, messages).await;
            println!("{nodes} node(s): {rate:>8.0} messages/s, latency p50 {p50:.2} ms, p99 {p99:.2} ms");
            for (r, _) in running {
                r.stop().await;
            }
        }
    });
}

/// Publishes `n` messages stamped with their send time as fast as the
/// client allows, and times each reply.
async fn measure(server: &NatsServer, n: usize) -> (f64, f64, f64) {
    let client = NatsBroker::new(&server.url(), None).unwrap();
    let mut replies = client
        .subscribe(&TopicPattern::parse("bench.out").unwrap(), "bench")
        .await
        .unwrap();
    // Until the subscriptions answer.
    loop {
        if client.publish("bench.in", Bytes::from(vec![0u8; 64])).await.is_ok()
            && tokio::time::timeout(Duration::from_millis(200), replies.next())
                .await
                .is_ok()
        {
            break;
        }
    }
    while tokio::time::timeout(Duration::from_millis(200), replies.next())
        .await
        .is_ok()
    {}
    let epoch = Instant::now();
    let publisher = tokio::spawn(async move {
        for _ in 0..n {
            let mut payload = vec![0u8; 64];
            payload[..16].copy_from_slice(&epoch.elapsed().as_nanos().to_le_bytes());
            client.publish("bench.in", Bytes::from(payload)).await.unwrap();
        }
    });
    let mut latencies = Vec::with_capacity(n);
    while latencies.len() < n {
        let m = tokio::time::timeout(Duration::from_secs(30), replies.next())
            .await
            .expect("replies keep coming")
            .unwrap();
        let sent = u128::from_le_bytes(m.payload[..16].try_into().unwrap());
        latencies.push((epoch.elapsed().as_nanos() - sent) as f64 / 1e6);
    }
    let took = epoch.elapsed().as_secs_f64();
    publisher.await.unwrap();
    latencies.sort_by(f64::total_cmp);
    (n as f64 / took, latencies[n / 2], latencies[n * 99 / 100])
}
