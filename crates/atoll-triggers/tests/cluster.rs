//! Schedules once per cluster, against a real redis-server started by the
//! test: three nodes in one process (three loads of one app, each with a
//! `Cluster` of its own) share one coordinator. Each test names its app
//! apart, so its keys (`atoll:<app>:...`) and log lines are its own.

use atoll_runtime::{App, Engine, EngineConfig, RuntimeConfig};
use atoll_testkit::RedisServer;
use atoll_triggers::Cluster;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

const PERIOD_MS: u64 = 250;

/// The app `name`, with one schedule every `PERIOD_MS` that counts its runs
/// in the kv store `default`: in Redis at `kv_url` (under `<name>-kv`), else
/// in memory.
async fn load(dir: &tempfile::TempDir, name: &str, kv_url: Option<&str>) -> Arc<App> {
    let caps = atoll_testkit::guest_path("caps-fixture").display().to_string();
    let manifest = format!(
        r#"
[app]
name = "{name}"

[functions.counter]
source = "{caps}"
capabilities = ["kv"]

[[schedules]]
name = "{name}"
every = "{PERIOD_MS}ms"
steps = [{{ fn = "counter", op = "visit" }}]
"#
    );
    std::fs::write(dir.path().join("atoll.toml"), manifest).unwrap();
    let runtime = dir.path().join("runtime.toml");
    let kv = match kv_url {
        Some(url) => format!("[kv.default]\nbackend = \"redis\"\nurl = \"{url}\"\nprefix = \"{name}-kv\"\n"),
        None => "[kv.default]\nbackend = \"memory\"\n".to_string(),
    };
    std::fs::write(&runtime, kv).unwrap();
    let config = RuntimeConfig {
        file: atoll_runtime::RuntimeConfigFile::load(&runtime).unwrap(),
        ..RuntimeConfig::default()
    };
    Arc::new(App::load(dir.path(), &engine(), &config).await.unwrap())
}

fn engine() -> Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            Engine::new(EngineConfig {
                cache_dir: Some(atoll_testkit::shared_cache_dir()),
                max_instances: 16,
                ..EngineConfig::default()
            })
            .unwrap()
        })
        .clone()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

async fn sleep_ms(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// The schedule log of this test binary, one JSON object per event.
fn logs() -> &'static Mutex<Vec<u8>> {
    atoll_testkit::capture_logs("atoll::schedule=debug", true)
}

/// Logged events with `message`.
fn events(message: &str) -> Vec<Value> {
    let text = atoll_testkit::captured(logs());
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .filter(|v| v["message"] == message)
        .collect()
}

/// (tick, node) of every run of schedule `name`, in log order.
fn runs(name: &str) -> Vec<(u64, String)> {
    events("schedule ran")
        .iter()
        .filter(|v| v["schedule"] == name)
        .map(|v| {
            let tick = v["tick"].as_u64().unwrap_or_else(|| panic!("no tick: {v}"));
            let node = v["node"].as_str().unwrap_or_else(|| panic!("no node: {v}"));
            (tick, node.to_string())
        })
        .collect()
}

/// Ticks from `first` to `last` ran each exactly once: none twice, none
/// missing in between.
fn assert_each_tick_once(runs: &[(u64, String)]) {
    let mut by_tick: BTreeMap<u64, Vec<&str>> = BTreeMap::new();
    for (tick, node) in runs {
        by_tick.entry(*tick).or_default().push(node);
    }
    let twice: Vec<_> = by_tick.iter().filter(|(_, nodes)| nodes.len() > 1).collect();
    assert!(twice.is_empty(), "ticks run more than once: {twice:?}");
    let ticks: Vec<u64> = by_tick.keys().copied().collect();
    for t in &ticks {
        assert_eq!(t % PERIOD_MS, 0, "tick {t} is not a multiple of the period");
    }
    for pair in ticks.windows(2) {
        assert_eq!(
            pair[1] - pair[0],
            PERIOD_MS,
            "a tick is missing between {pair:?}: {ticks:?}"
        );
    }
}

fn assert_about(count: usize, from_ms: u64, to_ms: u64, what: &str) {
    let expected = (to_ms - from_ms) / PERIOD_MS;
    assert!(
        (count as u64).abs_diff(expected) <= 1,
        "{what}: {count} ticks in {} ms, expected {expected} ± 1",
        to_ms - from_ms
    );
}

fn unique(test: &str) -> String {
    format!("{test}-{}-{}", std::process::id(), now_ms() % 1_000_000)
}

/// Three nodes of app `name` coordinated at `redis_url`, loaded first so
/// that they start together; and when they started.
async fn start_nodes(
    name: &str,
    redis_url: &str,
    kv_url: Option<&str>,
) -> (u64, Vec<(String, atoll_triggers::Running)>) {
    let dir = tempfile::tempdir().unwrap();
    let mut apps = Vec::new();
    for _ in 0..3 {
        apps.push(load(&dir, name, kv_url).await);
    }
    let started = now_ms();
    let mut nodes = Vec::new();
    for app in apps {
        let cluster = Cluster::new(redis_url).unwrap();
        let node = cluster.node().to_string();
        nodes.push((node, atoll_triggers::start_with(app, Some(cluster)).await.unwrap()));
    }
    (started, nodes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_run_each_tick_once_and_go_on_when_one_stops() {
    logs();
    let redis = RedisServer::start();
    let name = unique("once");
    let (started, mut nodes) = start_nodes(&name, &redis.url(), Some(&redis.url())).await;
    let names: BTreeSet<String> = nodes.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(names.len(), 3, "each node has a name of its own: {names:?}");
    let coordinator = format!("redis://127.0.0.1:{}/0", redis.port());
    let announced: BTreeSet<String> = events("schedules run once per cluster")
        .iter()
        .filter(|v| v["coordinator"] == coordinator.as_str())
        .map(|v| v["node"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(announced, names, "each node logs its name and coordinator at start");

    sleep_ms(1300).await;
    let (gone, first) = nodes.remove(0);
    let stopping = now_ms();
    first.stop().await;
    let stopped = now_ms();
    sleep_ms(1300).await;
    // Ticks are counted up to the stop; how long stopping takes is not.
    let ended = now_ms();
    for (_, running) in nodes {
        running.stop().await;
    }

    let runs = runs(&name);
    assert_each_tick_once(&runs);
    assert_about(
        runs.len(),
        started,
        ended,
        &format!("all along, from {started} to {ended}: {runs:?}"),
    );
    let after: Vec<_> = runs.iter().filter(|(tick, _)| *tick > stopped).collect();
    assert!(
        after.iter().all(|(_, node)| *node != gone),
        "{gone} ran a tick after it stopped: {after:?}"
    );
    let since_stopping = runs.iter().filter(|(tick, _)| *tick > stopping).count();
    assert_about(since_stopping, stopping, ended, "after one node stopped");
    for (tick, node) in &runs {
        assert!(names.contains(node), "tick {tick} ran on an unknown node {node}");
    }

    // Redis agrees: each run's claim is held by the node that ran it, and
    // the pipeline ran once per tick, not once per node.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    for (tick, node) in &runs {
        let holder: Option<String> = redis::cmd("GET")
            .arg(format!("atoll:{name}:schedule:{name}:{tick}"))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(holder.as_deref(), Some(node.as_str()), "the claim of tick {tick}");
    }
    let visits: Option<i64> = redis::cmd("GET")
        .arg(format!("{name}-kv:default:visits"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(visits, Some(runs.len() as i64), "runs counted by the pipeline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticks_are_skipped_while_the_coordinator_is_down_and_resume_after() {
    logs();
    let mut redis = RedisServer::start();
    let name = unique("outage");
    // Counted in memory, so that only the coordinator goes down with Redis.
    let (_, nodes) = start_nodes(&name, &redis.url(), None).await;
    let names: BTreeSet<String> = nodes.iter().map(|(n, _)| n.clone()).collect();

    sleep_ms(700).await;
    assert!(!runs(&name).is_empty(), "ticks ran before the outage");
    redis.kill();
    let killed = now_ms();
    sleep_ms(900).await;
    let outage_ended = now_ms();
    redis.restart();
    // Redis answers again from here: a restart takes a while on a busy
    // machine, and the ticks due meanwhile are still skipped.
    let back = now_ms();
    sleep_ms(1500).await;
    for (_, running) in nodes {
        running.stop().await;
    }

    let runs = runs(&name);
    // A tick claimed just before the kill may still run; none after it.
    let during: Vec<_> = runs
        .iter()
        .filter(|(tick, _)| *tick > killed + PERIOD_MS && *tick < outage_ended)
        .collect();
    assert!(during.is_empty(), "ticks ran with no coordinator: {during:?}");
    let after: Vec<_> = runs.iter().filter(|(tick, _)| *tick > outage_ended).collect();
    assert!(after.len() >= 2, "ticks resumed once Redis was back: {runs:?}");
    // The first tick due once Redis answers runs; the client may need one
    // more period to find its new connection.
    assert!(
        after[0].0 < back + 2 * PERIOD_MS,
        "the first tick after Redis was back (at {back}) ran: {after:?}"
    );
    let mut resumed = after.iter().map(|(t, _)| *t).collect::<Vec<_>>();
    resumed.dedup();
    assert_eq!(resumed.len(), after.len(), "no tick twice after the outage: {after:?}");

    let skipped: Vec<Value> =
        events("schedule tick skipped: the cluster coordinator is unreachable, so no node runs it")
            .into_iter()
            .filter(|v| v["schedule"] == name.as_str())
            .collect();
    let coordinator = format!("redis://127.0.0.1:{}/0", redis.port());
    for v in &skipped {
        assert_eq!(v["level"], "WARN", "{v}");
        assert_eq!(v["coordinator"], coordinator.as_str(), "{v}");
        // Only the tick being claimed as Redis went can be older than the kill.
        assert!(v["tick"].as_u64().is_some_and(|t| t + PERIOD_MS > killed), "{v}");
    }
    let warned: BTreeSet<String> = skipped
        .iter()
        .map(|v| v["node"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(warned, names, "every node warns of the ticks it skipped");
}
