//! Three `atoll serve` nodes of one app on real Redis (key-value and the
//! schedule coordinator), NATS with JetStream (messages) and PostgreSQL
//! (SQL, its migration applied once by three nodes starting together),
//! under load from clients spread over all three; one node is killed with
//! SIGKILL midway.
//!
//! What must hold:
//! - every acknowledged increment is in the shared counter, and every
//!   acknowledged insert is a row (and nothing more than was sent);
//! - every acknowledged publish is handled by the durable subscription at
//!   least once, and, while every node lives, exactly once;
//! - each schedule tick runs on one node only;
//! - the surviving nodes answer every request sent to them.
//!
//! The figures are printed; `scripts/test.sh` runs this with the rest.

mod common;

use atoll_testkit::{NatsServer, PostgresServer, RedisServer};
use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const APP: &str = r#"
[app]
name = "cl"

[functions.counter]
source = "{caps}"
capabilities = ["kv"]
kv_stores = ["default"]

[functions.publisher]
source = "{caps}"
capabilities = ["msg"]
publish_topics = ["jobs.*"]

[functions.orders]
source = "{caps}"
capabilities = ["sql"]
queries = ["add_order", "count_orders"]

[queries.add_order]
sql = "INSERT INTO orders (id) VALUES ($1)"

[queries.count_orders]
sql = "SELECT count(*) AS n FROM orders"

[[routes]]
method = "POST"
path = "/order"
steps = [{ fn = "orders", op = "sql" }]

[[routes]]
method = "POST"
path = "/visit"
steps = [{ fn = "counter", op = "visit" }]

[[routes]]
method = "POST"
path = "/publish"
steps = [{ fn = "publisher", op = "publish" }]

[[schedules]]
name = "tick"
every = "1s"
state = { cmd = '{"op":"increment","key":"ticks","by":1}' }
steps = [{ fn = "counter", op = "kv", input = "cmd" }]

# Each message is a key-value command: it counts its own deliveries.
[[subscriptions]]
topic = "jobs.*"
durable = true
steps = [{ fn = "counter", op = "kv" }]
"#;

struct Node {
    server: Running,
    addr: String,
    alive: Arc<AtomicBool>,
    log: ServerLog,
}

fn start_node(app: &std::path::Path, runtime: &std::path::Path, data: &std::path::Path) -> Node {
    let mut cmd = atoll();
    cmd.arg("serve")
        .arg(app)
        .arg("--runtime-config")
        .arg(runtime)
        .arg("--data-dir")
        .arg(data);
    let (server, addr, log) = start_logged(&mut cmd, &["--shutdown-grace", "5"]);
    Node {
        server,
        addr,
        alive: Arc::new(AtomicBool::new(true)),
        log,
    }
}

/// `redis-cli` against the test's server, one command, the raw answer.
fn redis(server: &RedisServer, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &server.port().to_string(), "--raw"])
        .args(args)
        .output()
        .expect("redis-cli (Debian package redis-tools, with redis-server)");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// How many times each message id was handled, from the keys its command
/// incremented.
fn deliveries(server: &RedisServer) -> BTreeMap<u64, u64> {
    let keys = redis(server, &["--scan", "--pattern", "atoll:cl:default:seen:*"]);
    let keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
    let mut counts = BTreeMap::new();
    for chunk in keys.chunks(1000) {
        let values = redis(server, &[&["MGET"], chunk].concat());
        for (k, v) in chunk.iter().zip(values.lines()) {
            let id = k.rsplit(':').next().unwrap().parse().unwrap();
            counts.insert(id, v.parse().unwrap_or(0));
        }
    }
    counts
}

#[derive(Default)]
struct Tally {
    visits_acked: AtomicU64,
    /// Requests to the killed node that got no answer: each may or may not
    /// have taken effect.
    unanswered_on_killed: AtomicU64,
    failed_on_survivors: AtomicU64,
    published: Mutex<BTreeSet<u64>>,
    orders_acked: AtomicU64,
}

#[test]
fn three_nodes_lose_nothing_acknowledged_when_one_is_killed() {
    let redis_server = RedisServer::start();
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let caps = atoll_testkit::guest_path("caps-fixture").display().to_string();
    std::fs::write(dir.path().join("atoll.toml"), APP.replace("{caps}", &caps)).unwrap();
    std::fs::create_dir_all(dir.path().join("migrations")).unwrap();
    std::fs::write(
        dir.path().join("migrations/001_orders.sql"),
        "CREATE TABLE orders (id BIGINT PRIMARY KEY);\n",
    )
    .unwrap();
    let postgres = PostgresServer::shared().create_database(&format!("cluster_{}", std::process::id()));
    let runtime = dir.path().join("runtime.toml");
    std::fs::write(
        &runtime,
        format!(
            "[kv.default]\nbackend = \"redis\"\nurl = \"{r}\"\n\n[cluster]\ncoordinator = \"{r}\"\n\n[msg]\nbackend = \"nats\"\nurl = \"{n}\"\n\n[sql.default]\nbackend = \"postgres\"\nurl = \"{p}\"\n",
            r = redis_server.url(),
            n = nats.url(),
            p = postgres
        ),
    )
    .unwrap();
    // Started together: the migration is applied once, under its lock.
    let starting: Vec<_> = (0..3)
        .map(|i| {
            let (app, runtime, data) = (
                dir.path().to_path_buf(),
                runtime.clone(),
                dir.path().join(format!("node{i}")),
            );
            std::thread::spawn(move || start_node(&app, &runtime, &data))
        })
        .collect();
    let mut nodes: Vec<Node> = starting.into_iter().map(|t| t.join().unwrap()).collect();

    let tally = Arc::new(Tally::default());
    let next_id = Arc::new(AtomicU64::new(0));
    let addrs: Vec<(String, Arc<AtomicBool>)> = nodes.iter().map(|n| (n.addr.clone(), n.alive.clone())).collect();
    let stop = Arc::new(AtomicBool::new(false));
    const KILLED: usize = 1;
    let clients: Vec<_> = (0..6)
        .map(|c| {
            let (tally, next_id, addrs, stop) = (tally.clone(), next_id.clone(), addrs.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut turn = c;
                while !stop.load(Ordering::Relaxed) {
                    turn += 1;
                    let node = turn % addrs.len();
                    let (addr, alive) = &addrs[node];
                    if node == KILLED && !alive.load(Ordering::Relaxed) {
                        continue;
                    }
                    let (path, body, id) = if turn % 3 == 0 {
                        ("/visit", String::new(), None)
                    } else if turn % 3 == 1 {
                        let id = next_id.fetch_add(1, Ordering::Relaxed);
                        let body = serde_json::json!({"name": "add_order", "params": [id]}).to_string();
                        ("/order", body, None)
                    } else {
                        let id = next_id.fetch_add(1, Ordering::Relaxed);
                        let command = format!(r#"{{"op":"increment","key":"seen:{id}","by":1}}"#);
                        let body = serde_json::json!({"topic": format!("jobs.j{id}"), "payload": command}).to_string();
                        ("/publish", body, Some(id))
                    };
                    let answered = try_post(addr, path, &body);
                    match (answered, id) {
                        (Some(200), None) if path == "/visit" => {
                            tally.visits_acked.fetch_add(1, Ordering::Relaxed);
                        }
                        (Some(200), None) => {
                            tally.orders_acked.fetch_add(1, Ordering::Relaxed);
                        }
                        (Some(200), Some(id)) => {
                            tally.published.lock().unwrap().insert(id);
                        }
                        _ if node == KILLED => {
                            tally.unanswered_on_killed.fetch_add(1, Ordering::Relaxed);
                        }
                        (other, _) => {
                            eprintln!("node {node} answered {other:?} to {path}");
                            tally.failed_on_survivors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();

    // Load on all three, then one is killed mid-load, then the two carry on.
    let load_started = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    let exactly_once_before_kill = {
        // A snapshot under load: nothing may have run twice yet.
        deliveries(&redis_server).values().all(|n| *n == 1)
    };
    nodes[KILLED].alive.store(false, Ordering::Relaxed);
    nodes[KILLED].server.0.kill().unwrap();
    nodes[KILLED].server.0.wait().unwrap();
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let load = load_started.elapsed();

    // The killed node's unacknowledged messages come back after the
    // acknowledgement deadline (30 s); wait for every acknowledged one.
    let published = tally.published.lock().unwrap().clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut handled = deliveries(&redis_server);
    while published.iter().any(|id| !handled.contains_key(id)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        handled = deliveries(&redis_server);
    }

    let visits: u64 = redis(&redis_server, &["GET", "atoll:cl:default:visits"])
        .parse()
        .unwrap_or(0);
    let count = common::http(&nodes[0].addr, "POST", "/order", &[], br#"{"name":"count_orders"}"#);
    let rows: u64 = serde_json::from_str::<serde_json::Value>(body(&count)).unwrap()["rows"][0][0]
        .as_u64()
        .unwrap_or_else(|| panic!("{count}"));
    let orders = tally.orders_acked.load(Ordering::Relaxed);
    let migrations: usize = nodes.iter().map(|n| logged(&n.log, "applied migration").len()).sum();
    let acked = tally.visits_acked.load(Ordering::Relaxed);
    let unanswered = tally.unanswered_on_killed.load(Ordering::Relaxed);
    let lost: Vec<_> = published.iter().filter(|id| !handled.contains_key(id)).collect();
    let duplicates: u64 = handled.values().map(|n| n.saturating_sub(1)).sum();
    // Ticks: each "schedule ran" line names its tick; none may appear twice.
    let mut ticks: BTreeMap<String, usize> = BTreeMap::new();
    for line in nodes.iter().flat_map(|n| logged(&n.log, "schedule ran")) {
        *ticks.entry(line["tick"].to_string()).or_default() += 1;
    }
    let twice: Vec<_> = ticks.iter().filter(|(_, n)| **n > 1).collect();
    println!(
        "three nodes, one killed after 3 s of {:.1} s of load:\n  \
         increments: {acked} acknowledged, {visits} counted; inserts: {orders} acknowledged, {rows} rows; \
         {unanswered} requests unanswered on the killed node\n  \
         migration applied by {migrations} of the three nodes started together\n  \
         messages: {} acknowledged publishes, {} handled, {} lost, {duplicates} duplicates (exactly once before the kill: {exactly_once_before_kill})\n  \
         schedule: {} ticks, {} run twice\n  \
         failed requests on the surviving nodes: {}",
        load.as_secs_f64(),
        published.len(),
        handled.len(),
        lost.len(),
        ticks.len(),
        twice.len(),
        tally.failed_on_survivors.load(Ordering::Relaxed),
    );

    assert!(
        acked > 50 && published.len() > 50,
        "the load was too light to show anything"
    );
    assert!(
        acked <= visits && visits <= acked + unanswered,
        "counted {visits}: every acknowledged increment ({acked}), and no more than those plus the unanswered ({unanswered})"
    );
    assert!(
        orders <= rows && rows <= orders + unanswered,
        "{rows} rows: every acknowledged insert ({orders}), and no more than those plus the unanswered ({unanswered})"
    );
    assert_eq!(migrations, 1, "the migration is applied by one node only");
    assert!(lost.is_empty(), "acknowledged and never handled: {lost:?}");
    assert!(exactly_once_before_kill, "a message ran twice while every node lived");
    assert!(twice.is_empty(), "ticks run on more than one node: {twice:?}");
    assert!(ticks.len() >= 4, "the schedule ran {} times in {:?}", ticks.len(), load);
    assert_eq!(tally.failed_on_survivors.load(Ordering::Relaxed), 0);
    for (i, n) in nodes.iter_mut().enumerate() {
        if i != KILLED {
            terminate(&mut n.server.0);
        }
    }
}

/// POSTs `body`; the status, or `None` if the node did not answer.
fn try_post(addr: &str, path: &str, body: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let code = status(&out);
    (code != 0).then_some(code)
}
