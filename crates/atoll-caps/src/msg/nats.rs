//! NATS behind the [`Broker`] trait, for apps on several nodes.
//!
//! - Subscriptions are queue subscriptions: the group is the app and the
//!   subscription, so each message runs once across every node.
//! - A durable subscription is a JetStream pull consumer (durable, explicit
//!   acks) on a stream that captures its topic pattern: a message is kept
//!   until a node's pipeline has handled it, delivered again (to any node)
//!   when a node fails it or dies with it, at most `max_deliver` times.
//! - The connection is made in the background and remade by itself;
//!   while it is down, publishing fails with an error that says so rather
//!   than queueing, and durable subscriptions retry until the server is back.

use super::{Broker, Message, NatsTls, Subscription};
use crate::tls::{Check, LastRefusal};
use async_nats::jetstream::{self, AckKind, consumer, stream};
use async_nats::{Client, ConnectOptions, ServerAddr};
use async_trait::async_trait;
use atoll_manifest::TopicPattern;
use bytes::Bytes;
use futures_util::StreamExt;
use rustls::sign::CertifiedKey;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::{OnceCell, mpsc};

/// How long a durable message may be held by a node that says nothing
/// before another gets it: a node that dies mid-run (SIGKILL, a lost
/// machine) delays its messages this long. A node still running one says
/// so every [`PROGRESS_EVERY`].
const ACK_WAIT: Duration = Duration::from_secs(30);
pub const PROGRESS_EVERY: Duration = Duration::from_secs(10);
/// Messages one node takes from the server at a time: few, so that a busy
/// or dying node holds few of them.
const BATCH: usize = 16;
/// How long a stream keeps messages no subscription has handled.
const MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// Messages a subscription may have waiting in this process.
const QUEUE: usize = 256;

pub struct NatsBroker {
    servers: Vec<ServerAddr>,
    credentials: Option<PathBuf>,
    tls: Option<Tls>,
    shown: String,
    client: OnceCell<Client>,
}

/// TLS of Atoll's own making, for a private CA or a client certificate:
/// its verifier remembers why it last refused the server, which the client
/// (reconnecting in the background) would not say.
struct Tls {
    config: rustls::ClientConfig,
    last_refusal: LastRefusal,
    trusted: String,
    /// Without a client certificate of its own: whether a server asked
    /// for one, which is why it then turns the node away.
    uncertified: Option<Arc<NoCertificate>>,
}

/// A node's answer to a server that asks for a client certificate when
/// `client_cert` is not set: none (rustls sends an empty one, as it would
/// with no resolver), but the asking is remembered, so the error that
/// follows says what is missing rather than only "not connected".
#[derive(Debug, Default)]
struct NoCertificate {
    asked: AtomicBool,
}

impl rustls::client::ResolvesClientCert for NoCertificate {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[rustls::SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        self.asked.store(true, Ordering::Relaxed);
        None
    }

    /// True, or rustls would not keep what it needs to answer a request.
    fn has_certs(&self) -> bool {
        true
    }
}

impl NatsBroker {
    /// Checks the configuration now; connects at first use, in the
    /// background, so an app starts while its NATS server is down.
    pub fn new(url: &str, credentials: Option<PathBuf>) -> Result<NatsBroker, String> {
        let servers = url
            .split(',')
            .map(|u| {
                u.trim()
                    .parse::<ServerAddr>()
                    .map_err(|e| format!("\"{}\" is not a NATS server address: {e}", u.trim()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(c) = &credentials {
            std::fs::metadata(c).map_err(|e| format!("cannot read the credentials file {}: {e}", c.display()))?;
        }
        Ok(NatsBroker {
            shown: servers
                .iter()
                .map(|s| format!("{}:{}", s.host(), s.port()))
                .collect::<Vec<_>>()
                .join(","),
            servers,
            credentials,
            tls: None,
            client: OnceCell::new(),
        })
    }

    /// Trusts `tls.ca_file` only (else the system's roots), presents
    /// `tls.client_cert` if given, and requires TLS if either is set.
    pub fn with_tls(mut self, tls: &NatsTls) -> Result<NatsBroker, String> {
        if !tls.is_set() {
            return Ok(self);
        }
        let (verifier, trusted) = match &tls.ca_file {
            Some(file) => {
                let roots = crate::tls::read_roots(file).map_err(|e| format!("ca_file: {e}"))?;
                (
                    crate::tls::verifier(roots, Check::ChainAndName)?,
                    format!("the CA in ca_file {}", file.display()),
                )
            }
            None => (
                crate::tls::platform_verifier()?,
                "a CA the system trusts (give ca_file for a private CA)".to_string(),
            ),
        };
        let (verifier, last_refusal) = crate::tls::remembering(verifier);
        let builder = rustls::ClientConfig::builder()
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut uncertified = None;
        let config = match &tls.client_cert {
            None => {
                let resolver = Arc::new(NoCertificate::default());
                uncertified = Some(resolver.clone());
                builder.with_client_cert_resolver(resolver)
            }
            Some((cert, key)) => builder
                .with_client_auth_cert(
                    crate::tls::read_certs(cert).map_err(|e| format!("client_cert: {e}"))?,
                    crate::tls::read_key(key, None).map_err(|e| format!("client_key: {}", e.explain(None)))?,
                )
                .map_err(|e| format!("client_cert and client_key do not make a pair: {e}"))?,
        };
        self.tls = Some(Tls {
            config,
            last_refusal,
            trusted,
            uncertified,
        });
        Ok(self)
    }

    async fn client(&self) -> Result<&Client, String> {
        self.client
            .get_or_try_init(|| async {
                let mut options = ConnectOptions::new()
                    .name("atoll")
                    .retry_on_initial_connect()
                    .max_reconnects(None)
                    .connection_timeout(Duration::from_secs(2));
                if let Some(tls) = &self.tls {
                    options = options.tls_client_config(tls.config.clone()).require_tls(true);
                }
                if let Some(c) = &self.credentials {
                    options = options
                        .credentials_file(c)
                        .await
                        .map_err(|e| format!("the credentials file {}: {e}", c.display()))?;
                }
                options
                    .connect(self.servers.clone())
                    .await
                    .map_err(|e| format!("NATS at {}: {e}", self.shown))
            })
            .await
    }

    /// Why TLS refused the server at the last attempt, if it did.
    fn refusal(&self) -> String {
        let Some(tls) = &self.tls else {
            return String::new();
        };
        match tls.last_refusal.get() {
            Some(e) => format!(
                "; the last attempt failed: TLS: {}",
                crate::tls::explain(&e, &tls.trusted)
            ),
            None if tls.uncertified.as_ref().is_some_and(|u| u.asked.load(Ordering::Relaxed)) => {
                "; the server asks for a client certificate and none is configured: set client_cert and client_key in [msg]".into()
            }
            None => String::new(),
        }
    }

    /// The client, if it is connected now: publishing to a client that is
    /// not would queue the message in memory and report success.
    async fn connected(&self) -> Result<&Client, String> {
        let client = self.client().await?;
        match client.connection_state() {
            async_nats::connection::State::Connected => Ok(client),
            _ => Err(format!(
                "not connected to NATS at {} (reconnecting{})",
                self.shown,
                self.refusal()
            )),
        }
    }
}

#[async_trait]
impl Broker for NatsBroker {
    async fn publish(&self, topic: &str, payload: Bytes) -> Result<(), String> {
        atoll_manifest::check_topic(topic)?;
        let client = self.connected().await?;
        client
            .publish(topic.to_string(), payload)
            .await
            .map_err(|e| format!("publishing on \"{topic}\": {e}"))?;
        // Sent, not only queued: a publish reported as done survives this
        // process dying right after.
        client
            .flush()
            .await
            .map_err(|e| format!("publishing on \"{topic}\": {e}"))
    }

    async fn request(&self, topic: &str, payload: Bytes, timeout: Duration) -> Result<Bytes, String> {
        atoll_manifest::check_topic(topic)?;
        let client = self.connected().await?;
        let request = async_nats::Request::new().payload(payload).timeout(Some(timeout));
        client
            .send_request(topic.to_string(), request)
            .await
            .map(|m| m.payload)
            .map_err(|e| match e.kind() {
                async_nats::RequestErrorKind::TimedOut => {
                    format!("no reply on \"{topic}\" within {} ms", timeout.as_millis())
                }
                async_nats::RequestErrorKind::NoResponders => format!("no subscription listens on \"{topic}\""),
                _ => format!("request on \"{topic}\": {e}"),
            })
    }

    async fn subscribe(&self, pattern: &TopicPattern, group: &str) -> Result<Subscription, String> {
        let client = self.client().await?;
        let mut subscriber = client
            .queue_subscribe(pattern.as_str().to_string(), group.to_string())
            .await
            .map_err(|e| format!("subscribing to \"{pattern}\" on NATS at {}: {e}", self.shown))?;
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(async move {
            loop {
                // Leave the queue group the moment the subscription is
                // given up (a stop, a new version): otherwise the server
                // keeps sending this member its share, which would be lost.
                let next = tokio::select! {
                    next = subscriber.next() => next,
                    _ = tx.closed() => break,
                };
                let Some(m) = next else { break };
                let message = Message {
                    reply: m.reply.map(|r| r.to_string()),
                    ..Message::new(m.subject.to_string(), m.payload)
                };
                if tx.send(message).await.is_err() {
                    break;
                }
            }
        });
        Ok(Subscription::new(rx))
    }

    async fn subscribe_durable(
        &self,
        pattern: &TopicPattern,
        group: &str,
        max_deliver: u32,
    ) -> Result<Subscription, String> {
        let client = self.client().await?.clone();
        let (tx, rx) = mpsc::channel(QUEUE);
        let (pattern, group, shown) = (pattern.clone(), group.to_string(), self.shown.clone());
        let (ready, consuming) = tokio::sync::oneshot::channel();
        let mut ready = Some(ready);
        tokio::spawn(async move {
            // The stream and the consumer are made (or found) once the
            // server answers, and again after it comes back.
            let mut warned = false;
            loop {
                match pull(&client, &pattern, &group, max_deliver, &tx, &mut ready).await {
                    Pulled::Closed => return,
                    Pulled::Failed(e) => {
                        if !warned {
                            tracing::warn!(target: "atoll::message", topic = %pattern, nats = %shown, error = %e, "durable subscription waiting for NATS JetStream");
                            warned = true;
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
        // With the server up, messages published once this returns are
        // kept for the subscription; with it down, the app starts anyway
        // and the subscription begins when the server is back.
        let _ = tokio::time::timeout(Duration::from_secs(5), consuming).await;
        Ok(Subscription::new(rx))
    }

    fn name(&self) -> &'static str {
        "nats"
    }
}

enum Pulled {
    /// The subscription's reader is gone: stop.
    Closed,
    Failed(String),
}

/// Feeds `tx` from the durable consumer of `group` on the stream that
/// captures `pattern`, until something fails or `tx` closes.
async fn pull(
    client: &Client,
    pattern: &TopicPattern,
    group: &str,
    max_deliver: u32,
    tx: &mpsc::Sender<Message>,
    ready: &mut Option<tokio::sync::oneshot::Sender<()>>,
) -> Pulled {
    let js = jetstream::new(client.clone());
    let stream = match js
        .get_or_create_stream(stream::Config {
            name: stream_name(pattern),
            subjects: vec![pattern.as_str().to_string()],
            max_age: MAX_AGE,
            ..Default::default()
        })
        .await
    {
        Ok(s) => s,
        Err(e) => return Pulled::Failed(format!("the stream for \"{pattern}\": {e}")),
    };
    let name = nats_name(group);
    let consumer = match stream
        .get_or_create_consumer(
            &name,
            consumer::pull::Config {
                durable_name: Some(name.clone()),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: ACK_WAIT,
                max_deliver: i64::from(max_deliver),
                ..Default::default()
            },
        )
        .await
    {
        Ok(c) => c,
        Err(e) => return Pulled::Failed(format!("the consumer {name}: {e}")),
    };
    let mut messages = match consumer.stream().max_messages_per_batch(BATCH).messages().await {
        Ok(m) => m,
        Err(e) => return Pulled::Failed(format!("reading {name}: {e}")),
    };
    if let Some(ready) = ready.take() {
        let _ = ready.send(());
    }
    loop {
        // Stop asking the moment the subscription is given up, so the
        // server sends this node nothing more it would have to wait out.
        let next = tokio::select! {
            next = messages.next() => next,
            _ = tx.closed() => return Pulled::Closed,
        };
        let Some(next) = next else { break };
        let m = match next {
            Ok(m) => m,
            Err(e) => return Pulled::Failed(format!("reading {name}: {e}")),
        };
        let attempt = m.info().map(|i| i.delivered.max(1) as u64).unwrap_or(1);
        let message = Message {
            delivery: Some(Delivery {
                attempt,
                max_deliver,
                message: m.clone(),
            }),
            ..Message::new(m.subject.to_string(), m.payload.clone())
        };
        if let Err(unsent) = tx.send(message).await {
            // Taken just as the subscription closed: straight back.
            if let Some(d) = unsent.0.delivery {
                let _ = d.retry(Duration::ZERO).await;
            }
            return Pulled::Closed;
        }
    }
    Pulled::Failed(format!("{name}: the server ended the subscription"))
}

/// One delivery of a durable message.
#[derive(Debug)]
pub struct Delivery {
    /// 1 for the first delivery.
    pub attempt: u64,
    pub max_deliver: u32,
    message: jetstream::Message,
}

impl Delivery {
    /// Whether the broker will deliver it again if this attempt fails.
    pub fn is_last(&self) -> bool {
        self.attempt >= u64::from(self.max_deliver)
    }

    /// Handled: not delivered again.
    pub async fn ack(&self) -> Result<(), String> {
        self.message.double_ack().await.map_err(|e| e.to_string())
    }

    /// Failed: deliver it again after `delay`, to whichever node asks first.
    pub async fn retry(&self, delay: Duration) -> Result<(), String> {
        self.message
            .ack_with(AckKind::Nak(Some(delay)))
            .await
            .map_err(|e| e.to_string())
    }

    /// Still being handled: the broker waits another acknowledgement
    /// deadline before delivering it elsewhere.
    pub async fn in_progress(&self) -> Result<(), String> {
        self.message
            .ack_with(AckKind::Progress)
            .await
            .map_err(|e| e.to_string())
    }

    /// Given up on (after being dead-lettered): never delivered again.
    pub async fn give_up(&self) -> Result<(), String> {
        self.message.ack_with(AckKind::Term).await.map_err(|e| e.to_string())
    }
}

/// A stream per topic pattern, so that subscriptions (of any app) on the
/// same pattern share one, each with its own consumer. NATS names allow
/// letters, digits, `-` and `_`: everything else is spelled out, so two
/// patterns never share a name.
fn stream_name(pattern: &TopicPattern) -> String {
    format!("ATOLL_{}", nats_name(pattern.as_str()))
}

fn nats_name(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' => out.push(c),
            '.' => out.push('_'),
            '*' => out.push_str("-S"),
            '>' => out.push_str("-G"),
            '_' => out.push_str("-U"),
            '-' => out.push_str("-D"),
            other => out.push_str(&format!("-X{:x}-", other as u32)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_valid_and_distinct() {
        let names: Vec<String> = ["orders.*", "orders.>", "orders_x", "orders.x", "a-b", "a_b", "é.x"]
            .into_iter()
            .map(nats_name)
            .collect();
        let unique: std::collections::HashSet<_> = names.iter().collect();
        assert_eq!(unique.len(), names.len(), "{names:?}");
        assert!(
            names
                .iter()
                .all(|n| n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')),
            "{names:?}"
        );
    }
}
