//! Subscriptions on NATS (a real `nats-server -js`), with two nodes
//! running one app: each message handled once across them, durable
//! messages retried and then dead-lettered, and requests answered by a
//! subscription's pipeline.

mod support;

use atoll_caps::msg::{Broker, NatsBroker};
use atoll_manifest::TopicPattern;
use atoll_testkit::NatsServer;
use bytes::Bytes;
use serde_json::{Value, json};
use std::time::Duration;
use support::{TestApp, load, logged};

fn manifest() -> &'static str {
    r#"
[app]
name = "shop"

[functions.f]
source = "{caps}"

[functions.publisher]
source = "{caps}"
capabilities = ["msg"]
publish_topics = ["orders.*", "price.*", "jobs.*", "quote.*"]

[[subscriptions]]
topic = "orders.*"
steps = [{ fn = "f", op = "whoami" }]
reply_to = "done.orders"
durable = true

[[subscriptions]]
topic = "jobs.*"
steps = [{ fn = "f", op = "fail" }]
durable = true
max_deliver = 2
dead_letter = "dead.jobs"

[[subscriptions]]
topic = "price.*"
steps = [{ fn = "f", op = "whoami" }]
"#
}

async fn node(server: &NatsServer) -> TestApp {
    let runtime = format!("[msg]\nbackend = \"nats\"\nurl = \"{}\"\n", server.url());
    load(manifest(), Some(&runtime), &[]).await.unwrap()
}

#[tokio::test]
async fn two_nodes_share_one_apps_subscriptions_on_nats() {
    let server = NatsServer::start();
    let watcher = NatsBroker::new(&server.url(), None).unwrap();
    let mut done = watcher
        .subscribe(&TopicPattern::parse("done.orders").unwrap(), "watch")
        .await
        .unwrap();
    let mut dead = watcher
        .subscribe(&TopicPattern::parse("dead.jobs").unwrap(), "watch")
        .await
        .unwrap();
    let (a, b) = (node(&server).await, node(&server).await);
    let running_a = atoll_triggers::start(a.app.clone()).await.unwrap();
    let running_b = atoll_triggers::start(b.app.clone()).await.unwrap();

    // Published from node A, twenty orders: each handled once, by either node.
    for i in 0..20 {
        let command = json!({"topic": format!("orders.o{i}"), "payload": format!("order {i}")}).to_string();
        let mut published = a.call("publisher", "publish", &command).await;
        for _ in 0..50 {
            if published.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            published = a.call("publisher", "publish", &command).await;
        }
        assert_eq!(published.unwrap(), "published");
    }
    let mut handled = Vec::new();
    while handled.len() < 20 {
        let m = tokio::time::timeout(Duration::from_secs(10), done.next())
            .await
            .expect("every order handled within 10 s")
            .unwrap();
        let v: Value = serde_json::from_slice(&m.payload).unwrap();
        handled.push(v["body"].as_str().unwrap().to_string());
    }
    handled.sort();
    handled.dedup();
    assert_eq!(handled.len(), 20, "each once: {handled:?}");
    assert!(
        tokio::time::timeout(Duration::from_millis(500), done.next())
            .await
            .is_err(),
        "nothing handled twice"
    );

    // A job that always fails: tried twice, then dead-lettered.
    a.call("publisher", "publish", r#"{"topic":"jobs.j1","payload":"job 1"}"#)
        .await
        .unwrap();
    let letter = tokio::time::timeout(Duration::from_secs(10), dead.next())
        .await
        .expect("dead-lettered within 10 s")
        .unwrap();
    assert_eq!(letter.payload, Bytes::from_static(b"job 1"));
    let logs = logged();
    assert!(logs.contains("message dead-lettered after its last attempt"), "{logs}");
    assert!(logs.contains("\"attempt\":2"), "the second attempt is logged as such");

    // A request, answered by a subscription's pipeline on either node.
    let reply = b
        .call(
            "publisher",
            "request",
            r#"{"topic":"price.kayak","payload":"how much?"}"#,
        )
        .await
        .unwrap();
    let v: Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(v["source"], "price.kayak");
    assert_eq!(v["body"], "how much?");
    let err = b
        .call(
            "publisher",
            "request",
            r#"{"topic":"quote.none","payload":"","timeout_ms":300}"#,
        )
        .await
        .unwrap_err()
        .message();
    assert!(err.contains("no subscription listens on \"quote.none\""), "{err}");

    running_a.stop().await;
    running_b.stop().await;
}
