use atoll_caps::msg::{Delivery, Message, PROGRESS_EVERY, Subscription as Messages};
use atoll_caps::spans::{self, Began, SpanKind};
use atoll_caps::trace::TraceContext;
use atoll_manifest::Subscription;
use atoll_runtime::{App, RequestInfo, Trigger, TriggerKind, new_request_id};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, watch};

/// Messages of one subscription handled at once.
const CONCURRENCY: usize = 64;

/// The queue group is the app and the subscription, so every node running
/// the same app shares the messages instead of each handling all of them.
pub(crate) async fn subscribe(app: &App, sub: &Subscription) -> Result<Messages, String> {
    let group = format!("atoll.{}.subscriptions.{}", app.manifest.app.name, sub.index);
    let broker = app.broker();
    let subscribed = match &sub.durable {
        Some(d) => broker.subscribe_durable(&sub.topic, &group, d.max_deliver).await,
        None => broker.subscribe(&sub.topic, &group).await,
    };
    subscribed.map_err(|e| format!("subscribing to \"{}\": {e}", sub.topic))
}

/// Where a durable subscription's messages go once they have failed
/// `max_deliver` times.
fn dead_letter(app: &App, sub: &Subscription) -> String {
    sub.durable
        .as_ref()
        .and_then(|d| d.dead_letter.clone())
        .unwrap_or_else(|| format!("atoll.{}.dead.{}", app.manifest.app.name, sub.index))
}

/// Waits before a failed durable message is delivered again: 0.5 s, then
/// doubling, at most 30 s.
fn backoff(attempt: u64) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << attempt.saturating_sub(1).min(6))).min(Duration::from_secs(30))
}

pub(crate) async fn run(app: Arc<App>, sub: Subscription, mut messages: Messages, mut stopped: watch::Receiver<bool>) {
    let permits = Arc::new(Semaphore::new(CONCURRENCY));
    let sub = Arc::new(sub);
    loop {
        let message = tokio::select! {
            m = messages.next() => match m {
                Some(m) => m,
                None => break,
            },
            _ = stopped.changed() => break,
        };
        let arrived = std::time::Instant::now();
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        atoll_metrics::message_started(&app.manifest.app.name, sub.topic.as_str(), arrived.elapsed());
        let (app, sub) = (app.clone(), sub.clone());
        tokio::spawn(async move {
            handle(&app, &sub, message).await;
            drop(permit);
        });
    }
    // Durable messages taken but not started go back at once; then the
    // runs in flight finish.
    messages.hand_back().await;
    let _ = permits.acquire_many(CONCURRENCY as u32).await;
}

async fn handle(app: &Arc<App>, sub: &Subscription, message: Message) {
    let request_id = new_request_id();
    let trace = TraceContext::start();
    let trace_id = trace.trace_id();
    let exported = spans::wanted(Some(&trace)).then(|| (trace.clone(), Began::now()));
    let trigger = Trigger::new(
        request_id.clone(),
        RequestInfo {
            body: message.payload.clone(),
            trigger: TriggerKind::Message {
                topic: message.topic.clone(),
            },
            trace: Some(trace),
            ..RequestInfo::default()
        },
    );
    let index = sub.index;
    let run = app.run_in_lanes(move |m| &m.subscriptions[index].pipeline, trigger);
    // A durable message held through a long run is said to be in progress,
    // so the broker does not hand it to another node meanwhile.
    let outcome = match &message.delivery {
        None => run.await,
        Some(delivery) => {
            let mut run = std::pin::pin!(run);
            loop {
                tokio::select! {
                    outcome = &mut run => break outcome,
                    _ = tokio::time::sleep(PROGRESS_EVERY) => {
                        let _ = delivery.in_progress().await;
                    }
                }
            }
        }
    };
    // Labelled by the subscription's pattern: a wildcard may match any number of topics.
    atoll_metrics::message_handled(&app.manifest.app.name, sub.topic.as_str(), outcome.result.is_ok());
    if let Some((trace, began)) = exported {
        spans::record(message_span(app, sub, &message, &request_id, &outcome, &trace, began));
    }
    match outcome.result {
        Ok(body) => {
            tracing::info!(target: "atoll::message", app = %app.manifest.app.name, topic = %message.topic, request_id = %request_id, trace_id = %trace_id, "message handled");
            // A request's sender waits on its own inbox; `reply_to` is the
            // subscription's standing answer topic. Both get the result.
            for reply in message.reply.iter().chain(sub.reply_to.iter()) {
                if let Err(e) = app.broker().publish(reply, body.clone()).await {
                    tracing::error!(target: "atoll::message", topic = %message.topic, reply_to = %reply, error = %e, "could not publish the reply");
                }
            }
            if let Some(d) = &message.delivery
                && let Err(e) = d.ack().await
            {
                // It will be delivered again: handled at least once.
                tracing::warn!(target: "atoll::message", topic = %message.topic, request_id = %request_id, error = %e, "could not acknowledge a handled message");
            }
        }
        Err(f) => {
            tracing::error!(
                target: "atoll::message",
                app = %app.manifest.app.name,
                topic = %message.topic,
                request_id = %request_id,
                trace_id = %trace_id,
                function = %f.function,
                status = f.status(),
                error = %f.message(),
                attempt = message.delivery.as_ref().map(|d| d.attempt),
                "message failed"
            );
            if let Some(d) = &message.delivery {
                settle_failed(app, sub, d, &message.topic, message.payload.clone()).await;
            }
        }
    }
}

/// A durable message whose pipeline failed: delivered again later, or, on
/// its last attempt, published to the dead-letter topic and given up on.
async fn settle_failed(app: &App, sub: &Subscription, d: &Delivery, topic: &str, payload: bytes::Bytes) {
    if !d.is_last() {
        let _ = d.retry(backoff(d.attempt)).await;
        return;
    }
    let dead = dead_letter(app, sub);
    match app.broker().publish(&dead, payload).await {
        Ok(()) => {
            tracing::error!(target: "atoll::message", topic = %topic, dead_letter = %dead, attempts = d.attempt, "message dead-lettered after its last attempt");
            let _ = d.give_up().await;
        }
        // Not given up on: the broker delivers it again after its
        // acknowledgement deadline, and the dead letter is tried again then.
        Err(e) => {
            tracing::error!(target: "atoll::message", topic = %topic, dead_letter = %dead, error = %e, "could not dead-letter a message; it will be delivered again")
        }
    }
}

/// A message handled, as the root span of its trace: a consumer span named
/// as the OpenTelemetry messaging conventions ask (`process TOPIC`), with
/// its pipeline's invocations under it.
fn message_span(
    app: &App,
    sub: &Subscription,
    message: &Message,
    request_id: &str,
    outcome: &atoll_runtime::Outcome,
    trace: &TraceContext,
    began: Began,
) -> spans::Span {
    let name = format!("process {}", message.topic);
    let mut span = began.until_now(trace, trace.span_id(), SpanKind::Consumer, name);
    span.attributes.push(("messaging.operation.type", "process".into()));
    span.attributes
        .push(("messaging.destination.name", message.topic.clone().into()));
    span.attributes
        .push(("messaging.body.size", (message.payload.len() as i64).into()));
    span.attributes
        .push(("atoll.app", app.manifest.app.name.clone().into()));
    span.attributes
        .push(("atoll.subscription", sub.topic.as_str().to_string().into()));
    span.attributes
        .push(("atoll.request_id", request_id.to_string().into()));
    span.error = outcome.result.as_ref().err().map(|f| f.message());
    span
}
