//! Per-function concurrency (`max_concurrency`, `max_queue`) through the
//! HTTP trigger: a slow function fills its own slots, requests beyond them
//! wait up to the queue time and then get 503 with `Retry-After`, and the
//! app's other functions keep answering meanwhile.

mod support;

use atoll_http::HttpConfig;
use atoll_testkit::guest_path;
use http::{Method, StatusCode};
use std::time::{Duration, Instant};
use support::{TestServer, get, send};

fn manifest() -> String {
    let caps = guest_path("caps-fixture").display().to_string().replace('\\', "/");
    format!(
        r#"
[app]
name = "limited"

[functions.slow]
source = "{caps}"
max_concurrency = 2
max_queue = "300ms"

[functions.quick]
source = "{caps}"

[[routes]]
method = "POST"
path = "/slow"
steps = [{{ fn = "slow", op = "sleep" }}]

[[routes]]
method = "POST"
path = "/quick"
steps = [{{ fn = "quick", op = "echo" }}]

# Each step takes its own function's slot: `quick` is free even while
# `slow` is full, so this pipeline fails at its second step.
[[routes]]
method = "POST"
path = "/both"
steps = [{{ fn = "quick", op = "echo" }}, {{ fn = "slow", op = "sleep" }}]
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_limited_function_serves_its_slots_and_refuses_the_rest_after_the_queue_time() {
    let s = TestServer::sandbox_app(&manifest(), 1 << 20, HttpConfig::default()).await;
    let addr = s.addr;
    let started = Instant::now();
    let slow: Vec<_> = (0..5)
        .map(|_| {
            tokio::spawn(async move { (send(addr, Method::POST, "/slow", &[], b"1500").await, started.elapsed()) })
        })
        .collect();

    // While `slow` is full, another function answers at once.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let quick_started = Instant::now();
    let r = send(addr, Method::POST, "/quick", &[], b"still here").await;
    assert_eq!((r.status, r.text().as_str()), (StatusCode::OK, "still here"));
    assert!(
        quick_started.elapsed() < Duration::from_millis(500),
        "{:?}",
        quick_started.elapsed()
    );

    // The metrics show the function full, with calls waiting.
    let metrics = get(addr, "/-/metrics").await.text();
    let value = |series: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series).map(|v| v.trim().to_string()))
            .unwrap_or_else(|| panic!("no {series} in {metrics}"))
    };
    assert_eq!(value(r#"atoll_function_slots{app="limited",function="slow"}"#), "2");
    assert_eq!(
        value(r#"atoll_function_slots_in_use{app="limited",function="slow"}"#),
        "2"
    );
    // The three others wait until 300 ms; on a machine slow enough to have
    // let that pass already, they have been refused.
    if started.elapsed() < Duration::from_millis(250) {
        assert_eq!(
            value(r#"atoll_function_slot_waiters{app="limited",function="slow"}"#),
            "3"
        );
    }

    let r = send(addr, Method::POST, "/both", &[], b"5").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
    assert_eq!(r.json()["function"], "slow");

    let mut served = 0;
    let mut refused = 0;
    for task in slow {
        let (r, at) = task.await.unwrap();
        match r.status {
            StatusCode::OK => {
                assert_eq!(r.text(), "slept 1500");
                served += 1;
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(r.header("retry-after"), Some("1"));
                let body = r.json();
                assert_eq!(body["function"], "slow");
                assert_eq!(
                    body["error"],
                    "the function is at its max_concurrency of 2 and no slot freed within 300 ms; retry shortly"
                );
                // Refused once the queue time is over, long before a slot frees.
                assert!(
                    at >= Duration::from_millis(300) && at < Duration::from_millis(1400),
                    "{at:?}"
                );
                refused += 1;
            }
            other => panic!("unexpected {other}: {}", r.text()),
        }
    }
    assert_eq!((served, refused), (2, 3));

    // The slots are free again.
    let r = send(addr, Method::POST, "/slow", &[], b"1").await;
    assert_eq!((r.status, r.text().as_str()), (StatusCode::OK, "slept 1"));
    let metrics = get(addr, "/-/metrics").await.text();
    assert!(
        metrics.contains(r#"atoll_function_slots_in_use{app="limited",function="slow"} 0"#),
        "{metrics}"
    );
    assert!(
        metrics
            .contains(r#"atoll_invocations_total{abi="wapc",app="limited",function="slow",outcome="no_capacity"} 4"#),
        "three refused requests and the refused step of /both: {metrics}"
    );
    s.stop().await;
}
