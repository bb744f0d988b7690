//! Messages end to end on NATS, with one node and with three nodes of the
//! same app (in this process, so they share its cores), against a real
//! `nats-server -js` started by the bench:
//! - CPU-bound: publish → a subscription's pipeline (the unmodified
//!   `wapc-plain` guest echoing the message, in a fresh instance) →
//!   `reply_to`. On one machine extra nodes only share its cores.
//! - Waiting on a backend: requests whose pipeline waits 20 ms (the caps
//!   fixture's `sleep`, which yields to the host like an outbound call).
//!   A node holds [`PER_NODE`] such messages at once, so what one node can
//!   take is bounded by that, not by the CPU, and the queue group should
//!   spread the load so that three nodes take about three times as much.
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
    let waiting = if quick { 300 } else { 30_000 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let server = NatsServer::start();
        let dir = tempfile::tempdir().unwrap();
        let plain = atoll_testkit::guest_path("wapc-plain").display().to_string();
        let caps = atoll_testkit::guest_path("caps-fixture").display().to_string();
        std::fs::write(
            dir.path().join("atoll.toml"),
            format!(
                "[app]\nname = \"bench\"\n\n[functions.echo]\nsource = \"{plain}\"\n\n\
                 [functions.wait]\nsource = \"{caps}\"\n\n\
                 [[subscriptions]]\ntopic = \"bench.in\"\nsteps = [{{ fn = \"echo\", op = \"ping\" }}]\nreply_to = \"bench.out\"\n\n\
                 [[subscriptions]]\ntopic = \"bench.wait\"\nsteps = [{{ fn = \"wait\", op = \"sleep\" }}]\n"
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
        println!(
            "NATS: publish → subscription pipeline (waPC echo) → reply_to, {messages} messages of 64 bytes; \
             then {waiting} requests whose pipeline waits 20 ms, {IN_FLIGHT} in flight, a node taking {PER_NODE} at once"
        );
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
            println!("{nodes} node(s), CPU-bound echo:      {rate:>8.0} messages/s, latency p50 {p50:.2} ms, p99 {p99:.2} ms");
            let (rate, p50, p99) = measure_waiting(&server, waiting).await;
            println!("{nodes} node(s), waiting 20 ms each: {rate:>8.0} messages/s, latency p50 {p50:.2} ms, p99 {p99:.2} ms");
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

/// Requests the client keeps in flight in the waiting scenario: more than
/// three nodes can hold, so the nodes, not the client, are the limit.
const IN_FLIGHT: usize = 1024;

/// Messages of one subscription a node handles at once (the subscription
/// trigger's own bound).
const PER_NODE: usize = 64;

/// `n` requests to `bench.wait`, each answered after its pipeline has
/// waited 20 ms, [`IN_FLIGHT`] at a time; each is timed from its request
/// to its reply.
async fn measure_waiting(server: &NatsServer, n: usize) -> (f64, f64, f64) {
    let client = Arc::new(NatsBroker::new(&server.url(), None).unwrap());
    let ask = |client: Arc<NatsBroker>| async move {
        let started = Instant::now();
        let reply = client
            .request("bench.wait", Bytes::from_static(b"20"), Duration::from_secs(30))
            .await;
        (reply, started.elapsed())
    };
    // Until every node's subscription answers.
    while ask(client.clone()).await.0.is_err() {}
    let epoch = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let mut latencies = Vec::with_capacity(n);
    for _ in 0..n {
        if tasks.len() >= IN_FLIGHT {
            latencies.push(took(tasks.join_next().await.unwrap().unwrap()));
        }
        tasks.spawn(ask(client.clone()));
    }
    while let Some(done) = tasks.join_next().await {
        latencies.push(took(done.unwrap()));
    }
    let elapsed = epoch.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    (n as f64 / elapsed, latencies[n / 2], latencies[n * 99 / 100])
}

fn took((reply, took): (Result<Bytes, String>, Duration)) -> f64 {
    assert_eq!(reply.expect("every request is answered").as_ref(), b"slept 20");
    took.as_secs_f64() * 1e3
}
