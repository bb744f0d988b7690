//! The NATS broker against a real `nats-server -js`, with no guest: queue
//! groups across nodes, request/reply, durable subscriptions (kept,
//! redelivered, dead after `max_deliver`), and an outage.

use atoll_caps::msg::{Broker, InProcessBroker, Message, NatsBroker, NatsTls};
use atoll_manifest::TopicPattern;
use atoll_testkit::{NatsServer, NatsServerTls, TestCa};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::time::Duration;

fn pattern(s: &str) -> TopicPattern {
    TopicPattern::parse(s).unwrap()
}

fn node(server: &NatsServer) -> NatsBroker {
    NatsBroker::new(&server.url(), None).unwrap()
}

async fn next(sub: &mut atoll_caps::msg::Subscription) -> Message {
    tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .expect("a message within 10 s")
        .expect("the subscription is open")
}

/// Publishing waits for the connection: made in the background.
async fn connected(broker: &NatsBroker) {
    for _ in 0..100 {
        if broker.publish("atoll.test.warmup", Bytes::new()).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never connected");
}

#[tokio::test]
async fn a_queue_group_across_nodes_handles_each_message_once() {
    let server = NatsServer::start();
    let (a, b, publisher) = (node(&server), node(&server), node(&server));
    let mut on_a = a.subscribe(&pattern("orders.*"), "shop.orders").await.unwrap();
    let mut on_b = b.subscribe(&pattern("orders.*"), "shop.orders").await.unwrap();
    let mut audit = b.subscribe(&pattern("orders.>"), "audit").await.unwrap();
    connected(&publisher).await;
    connected(&a).await;
    connected(&b).await;
    for i in 0..100 {
        publisher
            .publish(&format!("orders.n{i}"), Bytes::from(i.to_string()))
            .await
            .unwrap();
    }
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut from_audit = 0;
    while seen.values().sum::<usize>() < 100 || from_audit < 100 {
        tokio::select! {
            Some(m) = on_a.next() => *seen.entry(String::from_utf8_lossy(&m.payload).into_owned()).or_default() += 1,
            Some(m) = on_b.next() => *seen.entry(String::from_utf8_lossy(&m.payload).into_owned()).or_default() += 1,
            Some(_) = audit.next() => from_audit += 1,
            _ = tokio::time::sleep(Duration::from_secs(10)) => panic!("stalled: {} and {from_audit}", seen.len()),
        }
    }
    assert_eq!(seen.len(), 100);
    assert!(seen.values().all(|n| *n == 1), "each once in the group: {seen:?}");
    assert_eq!(from_audit, 100, "another group gets them all");
}

/// A request gets the reply the subscriber publishes on its `reply`; with
/// nobody listening, or nobody answering, the error says which.
#[tokio::test]
async fn requests_get_their_reply_or_say_why_not() {
    for broker in [
        Box::new(InProcessBroker::new()) as Box<dyn Broker>,
        Box::new(node(&NatsServer::start())) as Box<dyn Broker>,
    ] {
        let broker: std::sync::Arc<dyn Broker> = broker.into();
        let mut prices = broker.subscribe(&pattern("price.*"), "pricing").await.unwrap();
        let answering = broker.clone();
        tokio::spawn(async move {
            while let Some(m) = prices.next().await {
                let reply = m.reply.expect("a request carries where to reply");
                let answer = format!("{} costs 3", m.topic);
                answering.publish(&reply, Bytes::from(answer)).await.unwrap();
            }
        });
        let mut silent = broker.subscribe(&pattern("silent"), "s").await.unwrap();
        tokio::spawn(async move { while silent.next().await.is_some() {} });
        let mut reply = Err(String::new());
        for _ in 0..50 {
            reply = broker
                .request("price.kayak", Bytes::new(), Duration::from_secs(2))
                .await;
            if reply.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(reply.unwrap(), "price.kayak costs 3", "{}", broker.name());
        let nobody = broker
            .request("nobody.here", Bytes::new(), Duration::from_secs(2))
            .await;
        assert!(
            nobody
                .unwrap_err()
                .contains("no subscription listens on \"nobody.here\""),
            "{}",
            broker.name()
        );
        let late = broker.request("silent", Bytes::new(), Duration::from_millis(200)).await;
        assert!(
            late.unwrap_err().contains("no reply on \"silent\" within 200 ms"),
            "{}",
            broker.name()
        );
    }
}

/// Durable: kept while no node listens, delivered again when a node fails
/// it (to whichever node asks), and marked last on its last attempt.
#[tokio::test]
async fn durable_messages_are_kept_redelivered_and_counted() {
    let server = NatsServer::start();
    let (a, b) = (node(&server), node(&server));
    let first = a.subscribe_durable(&pattern("jobs.*"), "app.jobs", 3).await.unwrap();
    // Nobody listens for a while: the stream keeps what is published.
    first.hand_back().await;
    connected(&a).await;
    for i in 0..5 {
        a.publish(&format!("jobs.j{i}"), Bytes::from(i.to_string()))
            .await
            .unwrap();
    }
    let mut on_b = b.subscribe_durable(&pattern("jobs.*"), "app.jobs", 3).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..5 {
        let m = next(&mut on_b).await;
        let d = m.delivery.as_ref().expect("durable messages carry their delivery");
        assert_eq!(d.attempt, 1);
        got.push(String::from_utf8_lossy(&m.payload).into_owned());
        if m.payload != "0" {
            d.ack().await.unwrap();
        } else {
            d.retry(Duration::ZERO).await.unwrap();
        }
    }
    got.sort();
    assert_eq!(got, ["0", "1", "2", "3", "4"]);
    // "0" failed: again, then a third and last time.
    for attempt in 2..=3 {
        let m = next(&mut on_b).await;
        assert_eq!(m.payload, "0");
        let d = m.delivery.as_ref().unwrap();
        assert_eq!(d.attempt, attempt);
        assert_eq!(d.is_last(), attempt == 3);
        d.retry(Duration::ZERO).await.unwrap();
    }
    // Past max_deliver, the server delivers it no more.
    assert!(
        tokio::time::timeout(Duration::from_millis(700), on_b.next())
            .await
            .is_err()
    );
}

/// NATS down when the app starts: publishing fails saying so; once the
/// server is up, publishing works and a durable subscription made while
/// it was down begins.
#[tokio::test]
async fn an_outage_fails_publishes_clearly_until_the_server_is_back() {
    let mut server = NatsServer::start();
    server.kill();
    let broker = node(&server);
    let err = broker.publish("jobs.x", Bytes::new()).await.unwrap_err();
    assert!(err.contains("not connected to NATS at 127.0.0.1:"), "{err}");
    let mut jobs = broker
        .subscribe_durable(&pattern("late.*"), "app.late", 3)
        .await
        .unwrap();
    server.restart();
    connected(&broker).await;
    // The subscription's stream exists once it has begun.
    let mut published = false;
    for _ in 0..100 {
        broker.publish("late.one", Bytes::from_static(b"hi")).await.unwrap();
        if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(100), jobs.next()).await {
            assert_eq!(m.payload, "hi");
            m.delivery.unwrap().ack().await.unwrap();
            published = true;
            break;
        }
    }
    assert!(published, "the durable subscription never began");
}

/// A subscription given up (a stop, a new version of the app) leaves its
/// queue group at once: the members that remain get every message, none
/// is sent to the one that left and lost there.
#[tokio::test]
async fn a_subscription_given_up_leaves_its_queue_group_at_once() {
    let server = NatsServer::start();
    let (old, new, publisher) = (node(&server), node(&server), node(&server));
    let leaving = old.subscribe(&pattern("swap.*"), "app.swap").await.unwrap();
    let mut staying = new.subscribe(&pattern("swap.*"), "app.swap").await.unwrap();
    connected(&old).await;
    connected(&new).await;
    connected(&publisher).await;
    leaving.hand_back().await;
    // The unsubscription travels on the old node's own connection.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for i in 0..50 {
        publisher
            .publish(&format!("swap.m{i}"), Bytes::from(i.to_string()))
            .await
            .unwrap();
    }
    for _ in 0..50 {
        next(&mut staying).await;
    }
}

/// A NATS server whose certificate a CA made here signs, requiring TLS.
fn tls_files(dir: &std::path::Path, ca: &TestCa) -> NatsTls {
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("other-ca.pem"), TestCa::new("another CA").pem()).unwrap();
    NatsTls {
        ca_file: Some(dir.join("ca.pem")),
        client_cert: None,
    }
}

fn tls_node(server: &NatsServer, tls: &NatsTls) -> NatsBroker {
    NatsBroker::new(&server.url(), None).unwrap().with_tls(tls).unwrap()
}

/// Publishing keeps failing; the last error.
async fn never_connects(broker: &NatsBroker) -> String {
    let mut last = String::new();
    for _ in 0..20 {
        match broker.publish("atoll.test.warmup", Bytes::new()).await {
            Ok(()) => panic!("connected"),
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    last
}

#[tokio::test]
async fn tls_with_a_private_ca_carries_messages_and_refuses_another_ca() {
    let ca = TestCa::new("atoll test CA");
    let server = NatsServer::start_tls(&NatsServerTls {
        server: ca.issue(&["localhost", "127.0.0.1"]),
        client_ca: None,
    });
    assert!(server.url().starts_with("tls://"));
    let dir = tempfile::tempdir().unwrap();
    let tls = tls_files(dir.path(), &ca);
    let node = tls_node(&server, &tls);
    let mut sub = node.subscribe(&pattern("secure.*"), "secure").await.unwrap();
    connected(&node).await;
    node.publish("secure.one", Bytes::from("sealed")).await.unwrap();
    let m = next(&mut sub).await;
    assert_eq!((m.topic.as_str(), &m.payload[..]), ("secure.one", &b"sealed"[..]));

    let other = dir.path().join("other-ca.pem");
    let stranger = tls_node(
        &server,
        &NatsTls {
            ca_file: Some(other.clone()),
            client_cert: None,
        },
    );
    let err = never_connects(&stranger).await;
    let want = format!(
        "not connected to NATS at 127.0.0.1:{} (reconnecting; the last attempt failed: TLS: the server's certificate is not signed by the CA in ca_file {})",
        server.url().rsplit(':').next().unwrap(),
        other.display()
    );
    assert_eq!(err, want);
}

#[tokio::test]
async fn tls_with_a_client_certificate() {
    let ca = TestCa::new("atoll test CA");
    let server = NatsServer::start_tls(&NatsServerTls {
        server: ca.issue(&["127.0.0.1"]),
        client_ca: Some(ca.pem()),
    });
    let dir = tempfile::tempdir().unwrap();
    let mut tls = tls_files(dir.path(), &ca);
    // Without a certificate of its own, the server turns the node away,
    // and the error says what is missing.
    let anonymous = tls_node(&server, &tls);
    let err = never_connects(&anonymous).await;
    assert_eq!(
        err,
        format!(
            "not connected to NATS at 127.0.0.1:{} (reconnecting; the server asks for a client certificate and none is configured: set client_cert and client_key in [msg])",
            server.url().rsplit(':').next().unwrap()
        )
    );
    let client = ca.issue(&["atoll-node"]);
    std::fs::write(dir.path().join("client.pem"), &client.cert).unwrap();
    std::fs::write(dir.path().join("client.key"), &client.key).unwrap();
    tls.client_cert = Some((dir.path().join("client.pem"), dir.path().join("client.key")));
    let node = tls_node(&server, &tls);
    let mut sub = node.subscribe(&pattern("mtls"), "mtls").await.unwrap();
    connected(&node).await;
    node.publish("mtls", Bytes::from("both ways")).await.unwrap();
    assert_eq!(&next(&mut sub).await.payload[..], b"both ways");
}
