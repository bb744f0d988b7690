//! `msg`: publishing messages (grant `msg`, limited by `publish_topics`),
//! and the broker subscriptions are served from.
//!
//! The broker is a trait so the in-process one (the default, for one node)
//! and NATS (for several) are interchangeable. Both deliver each message to
//! one member of each queue group whose pattern matches the topic, so every
//! subscription of an app handles a message once however many nodes run it.
//!
//! | operation | payload | result |
//! |---|---|---|
//! | `publish` | map `{topic: str, payload: bin}` | `nil` |
//! | `request` | map `{topic: str, payload: bin, timeout_ms?: int}` | `bin`: the reply |

mod nats;
pub mod runtime_config;

pub use nats::{Delivery, NatsBroker, PROGRESS_EVERY};
pub use runtime_config::{MsgBackendConfig, NatsTls};

use crate::capability::{BuildContext, HostCapability};
use crate::wire::{decode, encode};
use crate::{HostCallError, Invocation};
use async_trait::async_trait;
use atoll_manifest::{Capability, Function, ManifestError, TopicPattern, check_topic};
use bytes::Bytes;
use serde::Deserialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

#[derive(Debug)]
pub struct Message {
    pub topic: String,
    pub payload: Bytes,
    /// Where the sender waits for an answer (a request), if it does.
    pub reply: Option<String>,
    /// For a durable subscription: this delivery, to acknowledge once
    /// handled or to hand back for another attempt.
    pub delivery: Option<Delivery>,
}

impl Message {
    pub fn new(topic: impl Into<String>, payload: Bytes) -> Message {
        Message {
            topic: topic.into(),
            payload,
            reply: None,
            delivery: None,
        }
    }
}

/// Messages for one subscription.
pub struct Subscription {
    rx: mpsc::Receiver<Message>,
}

impl Subscription {
    pub fn new(rx: mpsc::Receiver<Message>) -> Subscription {
        Subscription { rx }
    }

    /// The next message; `None` once the broker is gone.
    pub async fn next(&mut self) -> Option<Message> {
        self.rx.recv().await
    }

    /// Stops taking messages, and hands the durable ones already taken but
    /// not started back to the broker at once, for another node or the next
    /// version (rather than after their acknowledgement deadline).
    pub async fn hand_back(mut self) {
        self.rx.close();
        while let Some(m) = self.rx.recv().await {
            if let Some(d) = &m.delivery {
                let _ = d.retry(Duration::ZERO).await;
            }
        }
    }
}

/// How long `request` waits for a reply unless told otherwise.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

#[async_trait]
pub trait Broker: Send + Sync {
    async fn publish(&self, topic: &str, payload: Bytes) -> Result<(), String>;
    /// Publishes and waits up to `timeout` for one reply.
    async fn request(&self, topic: &str, payload: Bytes, timeout: Duration) -> Result<Bytes, String>;
    /// Joins `group`: each message on a topic matching `pattern` goes to
    /// one member of the group.
    async fn subscribe(&self, pattern: &TopicPattern, group: &str) -> Result<Subscription, String>;
    /// As `subscribe`, but messages are kept by the broker until
    /// acknowledged, and delivered again (to any member) if not, up to
    /// `max_deliver` times. The in-process broker keeps nothing across a
    /// restart: there it is `subscribe`.
    async fn subscribe_durable(
        &self,
        pattern: &TopicPattern,
        group: &str,
        max_deliver: u32,
    ) -> Result<Subscription, String> {
        let _ = max_deliver;
        self.subscribe(pattern, group).await
    }
    /// `in-process` or `nats`, for messages.
    fn name(&self) -> &'static str;
}

/// Messages between the functions of this process.
#[derive(Default)]
pub struct InProcessBroker {
    groups: Mutex<Vec<QueueGroup>>,
}

struct QueueGroup {
    pattern: TopicPattern,
    name: String,
    members: Vec<mpsc::Sender<Message>>,
    next: usize,
}

/// Messages a slow subscriber may have waiting before publishers wait too.
const QUEUE: usize = 1024;

impl InProcessBroker {
    pub fn new() -> InProcessBroker {
        InProcessBroker::default()
    }
}

impl InProcessBroker {
    async fn send(&self, topic: &str, payload: Bytes, reply: Option<&str>) -> Result<(), String> {
        check_topic(topic)?;
        // Pick one member per matching group, round robin, without holding
        // the lock across the sends.
        let targets: Vec<mpsc::Sender<Message>> = {
            let mut groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
            groups.iter_mut().for_each(|g| g.members.retain(|m| !m.is_closed()));
            groups.retain(|g| !g.members.is_empty());
            groups
                .iter_mut()
                .filter(|g| g.pattern.matches(topic))
                .map(|g| {
                    g.next = (g.next + 1) % g.members.len();
                    g.members[g.next].clone()
                })
                .collect()
        };
        for target in targets {
            let message = Message {
                reply: reply.map(str::to_string),
                ..Message::new(topic, payload.clone())
            };
            // A subscriber that went away is not the publisher's failure.
            let _ = target.send(message).await;
        }
        Ok(())
    }
}

#[async_trait]
impl Broker for InProcessBroker {
    async fn publish(&self, topic: &str, payload: Bytes) -> Result<(), String> {
        self.send(topic, payload, None).await
    }

    async fn request(&self, topic: &str, payload: Bytes, timeout: Duration) -> Result<Bytes, String> {
        static INBOX: AtomicU64 = AtomicU64::new(0);
        let inbox = format!("_INBOX.{}", INBOX.fetch_add(1, Ordering::Relaxed));
        let pattern = TopicPattern::parse(&inbox)?;
        let mut replies = self.subscribe(&pattern, &inbox).await?;
        let listening = self
            .groups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|g| g.pattern.matches(topic));
        if !listening {
            return Err(format!("no subscription listens on \"{topic}\""));
        }
        self.send(topic, payload, Some(&inbox)).await?;
        let reply = tokio::time::timeout(timeout, replies.next()).await;
        match reply {
            Ok(Some(m)) => Ok(m.payload),
            Ok(None) => Err("the broker went away".into()),
            Err(_) => Err(format!("no reply on \"{topic}\" within {} ms", timeout.as_millis())),
        }
    }

    async fn subscribe(&self, pattern: &TopicPattern, group: &str) -> Result<Subscription, String> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let mut groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        match groups.iter_mut().find(|g| g.pattern == *pattern && g.name == group) {
            Some(g) => g.members.push(tx),
            None => groups.push(QueueGroup {
                pattern: pattern.clone(),
                name: group.to_string(),
                members: vec![tx],
                next: 0,
            }),
        }
        Ok(Subscription::new(rx))
    }

    fn name(&self) -> &'static str {
        "in-process"
    }
}

#[derive(Deserialize)]
struct Publish {
    topic: String,
    #[serde(with = "serde_bytes")]
    payload: Vec<u8>,
    /// `request` only.
    timeout_ms: Option<u64>,
}

/// The longest a function may wait for a reply.
const MAX_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The app's broker: in-process, or NATS as the runtime configuration says.
pub struct Msg {
    broker: Arc<dyn Broker>,
}

impl Msg {
    pub fn broker(&self) -> Arc<dyn Broker> {
        self.broker.clone()
    }
}

/// The broker, and the topics one function may publish on.
#[derive(Clone, Default)]
pub struct MsgGrant {
    pub broker: Option<Arc<dyn Broker>>,
    pub publish_topics: Vec<TopicPattern>,
}

impl std::fmt::Debug for MsgGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.publish_topics.iter().map(|t| t.to_string()))
            .finish()
    }
}

impl HostCapability for Msg {
    const KIND: Capability = Capability::Msg;
    type Grant = MsgGrant;

    async fn build(ctx: &BuildContext<'_>) -> Result<Msg, Vec<ManifestError>> {
        let broker: Arc<dyn Broker> = match runtime_config::parse(ctx.runtime)? {
            MsgBackendConfig::InProcess => Arc::new(InProcessBroker::new()),
            MsgBackendConfig::Nats {
                url,
                credentials,
                tls,
                loc,
            } => match NatsBroker::new(&url, credentials).and_then(|b| b.with_tls(&tls)) {
                Ok(b) => Arc::new(b),
                Err(e) => {
                    let src = ctx.runtime.source.as_ref().expect("a [msg] section comes from a file");
                    return Err(vec![src.error(loc, "msg.url", e)]);
                }
            },
        };
        Ok(Msg { broker })
    }

    fn grant(&self, f: &Function) -> Result<MsgGrant, String> {
        Ok(MsgGrant {
            broker: Some(self.broker.clone()),
            publish_topics: f.publish_topics.clone(),
        })
    }

    async fn call(
        inv: &Invocation,
        grant: &MsgGrant,
        _: &str,
        op: &str,
        payload: &[u8],
    ) -> Result<Vec<u8>, HostCallError> {
        call(inv, grant, op, payload).await
    }
}

async fn call(inv: &Invocation, grant: &MsgGrant, op: &str, payload: &[u8]) -> Result<Vec<u8>, HostCallError> {
    if op != "publish" && op != "request" {
        return Err(HostCallError::unknown_op("msg", op, &["publish", "request"]));
    }
    let Some(broker) = &grant.broker else {
        return Err(HostCallError::Failed(
            "messaging is not configured for this function".into(),
        ));
    };
    let p: Publish = decode(payload, "{topic, payload, timeout_ms?}")?;
    check_topic(&p.topic).map_err(|e| HostCallError::BadPayload(format!("topic {e}")))?;
    if !grant.publish_topics.iter().any(|t| t.matches(&p.topic)) {
        let allowed: Vec<_> = grant.publish_topics.iter().map(|t| t.to_string()).collect();
        return Err(HostCallError::Failed(format!(
            "topic \"{}\" is not in the publish_topics of function \"{}\" ({})",
            p.topic,
            inv.function,
            allowed.join(", ")
        )));
    }
    let failed = |e: String| HostCallError::Failed(format!("msg ({}): {e}", broker.name()));
    if op == "request" {
        let timeout = p
            .timeout_ms
            .map_or(REQUEST_TIMEOUT, Duration::from_millis)
            .min(MAX_REQUEST_TIMEOUT);
        let reply = broker
            .request(&p.topic, p.payload.into(), timeout)
            .await
            .map_err(failed)?;
        return Ok(encode(&serde_bytes::Bytes::new(&reply)));
    }
    broker.publish(&p.topic, p.payload.into()).await.map_err(failed)?;
    Ok(encode(&()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(s: &str) -> TopicPattern {
        TopicPattern::parse(s).unwrap()
    }

    #[tokio::test]
    async fn each_group_gets_each_matching_message_once() {
        let broker = InProcessBroker::new();
        let mut a1 = broker.subscribe(&pattern("orders.*"), "a").await.unwrap();
        let mut a2 = broker.subscribe(&pattern("orders.*"), "a").await.unwrap();
        let mut b = broker.subscribe(&pattern("orders.>"), "b").await.unwrap();
        let mut other = broker.subscribe(&pattern("users.*"), "c").await.unwrap();
        for i in 0..4 {
            broker
                .publish("orders.created", Bytes::from(format!("{i}")))
                .await
                .unwrap();
        }
        let mut to_a = Vec::new();
        for _ in 0..2 {
            to_a.push(a1.next().await.unwrap().payload);
            to_a.push(a2.next().await.unwrap().payload);
        }
        to_a.sort();
        assert_eq!(to_a, vec!["0", "1", "2", "3"], "group a shares the messages");
        for i in 0..4 {
            assert_eq!(
                b.next().await.unwrap().payload,
                format!("{i}"),
                "group b sees them all, in order"
            );
        }
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), other.next())
                .await
                .is_err()
        );
        assert!(
            broker
                .publish("orders.*", Bytes::new())
                .await
                .unwrap_err()
                .contains("wildcards")
        );
    }

    #[tokio::test]
    async fn departed_subscribers_are_forgotten() {
        let broker = InProcessBroker::new();
        let gone = broker.subscribe(&pattern("t"), "g").await.unwrap();
        let mut stays = broker.subscribe(&pattern("t"), "g").await.unwrap();
        drop(gone);
        for _ in 0..3 {
            broker.publish("t", Bytes::from_static(b"x")).await.unwrap();
        }
        for _ in 0..3 {
            assert_eq!(stays.next().await.unwrap().payload, "x");
        }
    }
}
