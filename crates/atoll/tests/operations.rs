//! What an operator watches: `/-/metrics`, scraped by a real Prometheus.

mod common;

use atoll_testkit::{PrometheusServer, free_port};
use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

/// Polls `query` until it equals `want` (a scrape happens every second).
fn eventually(prom: &PrometheusServer, query: &str, want: f64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = None;
    while Instant::now() < deadline {
        seen = prom.query(query);
        if seen == Some(want) {
            return;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("Prometheus answered {seen:?} to {query}, not {want}");
}

/// The counter example under a short load, scraped by Prometheus on a
/// metrics address of its own: the counts Prometheus holds are the
/// requests, invocations and store calls that were made, and promtool finds
/// nothing wrong with the text.
#[test]
fn prometheus_scrapes_counts_that_match_the_requests_sent() {
    let example = atoll_testkit::repo_root().join("examples/counter");
    let (out, _, stderr) = run(atoll().arg("build").arg(&example));
    assert!(out.status.success(), "{stderr}");
    let data = tempfile::tempdir().unwrap();
    let metrics_addr = format!("127.0.0.1:{}", free_port());
    let mut served = serve_with(
        &example,
        &[
            "--data-dir",
            data.path().to_str().unwrap(),
            "--metrics-listen",
            &metrics_addr,
        ],
    );
    let addr = served.addr.clone();
    // Moved away from the app's address, answered on its own.
    assert_eq!(status(&http(&addr, "GET", "/-/metrics", &[], b"")), 404);
    let prom = PrometheusServer::start(&metrics_addr);

    const PAGES: usize = 40;
    const COUNTS: usize = 15;
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                for i in 0..PAGES / 4 {
                    assert_eq!(status(&http(&addr, "GET", "/", &[], b"")), 200);
                    if t == 0 && i < COUNTS {
                        assert_eq!(status(&http(&addr, "GET", "/count", &[], b"")), 200);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(status(&http(&addr, "GET", "/nowhere", &[], b"")), 404);

    eventually(
        &prom,
        r#"sum(atoll_http_requests_total{route="GET /",status="2xx"})"#,
        PAGES as f64,
    );
    eventually(
        &prom,
        r#"sum(atoll_http_requests_total{route="GET /count",status="2xx"})"#,
        (COUNTS.min(PAGES / 4)) as f64,
    );
    eventually(
        &prom,
        r#"sum(atoll_http_requests_total{route="(no route)",status="4xx"})"#,
        1.0,
    );
    eventually(
        &prom,
        r#"sum(atoll_invocations_total{function="counter",abi="wapc",outcome="ok"})"#,
        (PAGES + COUNTS.min(PAGES / 4)) as f64,
    );
    eventually(
        &prom,
        r#"sum(atoll_http_request_duration_seconds_count{route="GET /"})"#,
        PAGES as f64,
    );
    assert!(prom.target_up());
    // Every page view increments the counter in the store: at least one kv
    // call each, all granted and answered.
    let kv = prom
        .query(r#"sum(atoll_host_calls_total{namespace="kv",outcome="ok"})"#)
        .unwrap_or(0.0);
    assert!(kv >= PAGES as f64, "kv calls: {kv}");
    assert_eq!(prom.query(r#"sum(atoll_host_calls_total{outcome="refused"})"#), None);
    assert_eq!(prom.query("atoll_instance_capacity"), Some(1000.0));
    assert_eq!(prom.query("atoll_instances_in_use"), Some(0.0));
    assert_eq!(
        prom.query(&format!(
            r#"atoll_build_info{{version="{}"}}"#,
            env!("CARGO_PKG_VERSION")
        )),
        Some(1.0)
    );

    // The text itself passes Prometheus's own linter.
    let text = body(&http(&metrics_addr, "GET", "/-/metrics", &[], b"")).to_string();
    assert!(text.contains("# TYPE atoll_http_requests_total counter"), "{text}");
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus) is needed; scripts/test.sh installs it");
    use std::io::Write;
    promtool.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let checked = promtool.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    terminate(&mut served.child);
}

/// `--tls-cert` and `--tls-key`: the app over HTTPS, end to end through
/// the binary, with the log saying `https://`; files that cannot serve
/// are refused at start, naming the flag.
#[test]
fn serve_over_https_with_tls_cert_and_key() {
    let example = atoll_testkit::repo_root().join("examples/hello");
    let (out, _, stderr) = run(atoll().arg("build").arg(&example));
    assert!(out.status.success(), "{stderr}");
    let files = tempfile::tempdir().unwrap();
    let (ca, cert, key) = atoll_testkit::localhost_certificate(files.path());
    let at = |name: &str| files.path().join(name).display().to_string();
    std::fs::write(
        at("other.key"),
        atoll_testkit::TestCa::new("x").issue(&["localhost"]).key,
    )
    .unwrap();

    let (mut child, address, lines) = start_serving(&example, &["--tls-cert", &cert, "--tls-key", &key]);
    std::thread::spawn(move || for _ in lines {});
    let addr = address
        .strip_prefix("https://")
        .unwrap_or_else(|| panic!("the serving line says {address}"));
    let reply = https_get(addr, &ca, "/hello/tls").unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("tls"), "{reply}");
    terminate(&mut child);

    for (args, want) in [
        (
            vec!["--tls-cert", "/nonexistent/server.pem", "--tls-key", "server.key"],
            "--tls-cert: cannot read /nonexistent/server.pem".to_string(),
        ),
        (
            vec!["--tls-cert", "server.pem", "--tls-key", "other.key"],
            format!(
                "--tls-key: the private key in {} is not the key of the certificate in {}",
                at("other.key"),
                at("server.pem")
            ),
        ),
        (vec!["--tls-cert", "server.pem"], "--tls-key <FILE>".to_string()),
    ] {
        let args: Vec<String> = args
            .iter()
            .map(|a| {
                if a.starts_with('-') || a.starts_with('/') {
                    a.to_string()
                } else {
                    at(a)
                }
            })
            .collect();
        let (out, _, stderr) = run(atoll()
            .arg("serve")
            .arg(&example)
            .args(["--listen", "127.0.0.1:0"])
            .args(&args));
        assert!(!out.status.success(), "{args:?} started");
        assert!(stderr.contains(&want), "{args:?}: missing {want:?} in:\n{stderr}");
    }
}

/// `--no-metrics`: nothing recorded, and no endpoint.
#[test]
fn no_metrics_means_no_endpoint() {
    let example = atoll_testkit::repo_root().join("examples/hello");
    let (out, _, stderr) = run(atoll().arg("build").arg(&example));
    assert!(out.status.success(), "{stderr}");
    let mut served = serve_with(&example, &["--no-metrics"]);
    assert_eq!(status(&http(&served.addr, "GET", "/-/metrics", &[], b"")), 404);
    terminate(&mut served.child);
    let mut served = serve_with(&example, &[]);
    let reply = http(&served.addr, "GET", "/-/metrics", &[], b"");
    assert_eq!(status(&reply), 200);
    assert!(body(&reply).contains("atoll_build_info"), "{reply}");
    terminate(&mut served.child);
}

/// `example` built and served with `runtime` (a runtime configuration's
/// text) and `--ready-requires-backends`.
fn serve_requiring_backends(example: &str, runtime: &str) -> (Served, tempfile::NamedTempFile) {
    let example = atoll_testkit::repo_root().join("examples").join(example);
    let (out, _, stderr) = run(atoll().arg("build").arg(&example));
    assert!(out.status.success(), "{stderr}");
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(config.path(), runtime).unwrap();
    let served = serve_with(
        &example,
        &[
            "--runtime-config",
            config.path().to_str().unwrap(),
            "--ready-requires-backends",
        ],
    );
    (served, config)
}

/// Waits (10 s at most) until `/-/ready` answers `want`; its body.
fn ready_until(addr: &str, want: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = http(addr, "GET", "/-/ready", &[], b"");
        if status(&r) == want {
            return body(&r).to_string();
        }
        assert!(Instant::now() < deadline, "/-/ready stayed {}: {r}", status(&r));
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// With `--ready-requires-backends`, `/-/ready` follows the Redis store:
/// 503 naming it while it is down, 200 again once it is back; `/-/health`
/// stays 200 throughout.
#[test]
fn readiness_follows_a_required_backend() {
    let mut redis = atoll_testkit::RedisServer::start();
    let runtime = format!("[kv.default]\nbackend = \"redis\"\nurl = \"{}\"\n", redis.url());
    let (mut served, _config) = serve_requiring_backends("counter", &runtime);
    let addr = served.addr.clone();
    let ready = http(&addr, "GET", "/-/ready", &[], b"");
    assert_eq!(status(&ready), 200, "ready from the start: {ready}");
    redis.kill();
    let text = ready_until(&addr, 503);
    assert!(
        text.contains(r#""status":"unavailable""#) && text.contains("kv.default (redis://127.0.0.1:"),
        "{text}"
    );
    assert_eq!(status(&http(&addr, "GET", "/-/health", &[], b"")), 200);
    redis.restart();
    ready_until(&addr, 200);
    assert_eq!(
        status(&http(&addr, "GET", "/", &[], b"")),
        200,
        "the store serves again"
    );
    terminate(&mut served.child);
}

/// The same for NATS, when messaging is on it.
#[test]
fn readiness_follows_nats_when_messaging_is_on_it() {
    let mut nats = atoll_testkit::NatsServer::start();
    let runtime = format!("[msg]\nbackend = \"nats\"\nurl = \"{}\"\n", nats.url());
    let (mut served, _config) = serve_requiring_backends("hello", &runtime);
    let addr = served.addr.clone();
    ready_until(&addr, 200);
    nats.kill();
    let text = ready_until(&addr, 503);
    assert!(text.contains("msg (nats://127.0.0.1:"), "{text}");
    nats.restart();
    ready_until(&addr, 200);
    terminate(&mut served.child);
}
