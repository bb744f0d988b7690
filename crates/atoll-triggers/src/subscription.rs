use atoll_caps::msg::{Message, Subscription as Messages};
use atoll_caps::trace::TraceContext;
use atoll_manifest::Subscription;
use atoll_runtime::{App, RequestInfo, Trigger, TriggerKind, new_request_id};
use std::sync::Arc;
use tokio::sync::{Semaphore, watch};

/// Messages of one subscription handled at once.
const CONCURRENCY: usize = 64;

/// The queue group is the app and the subscription, so every node running
/// the same app shares the messages instead of each handling all of them.
pub(crate) async fn subscribe(app: &App, sub: &Subscription) -> Result<Messages, String> {
    let group = format!("atoll.{}.subscriptions.{}", app.manifest.app.name, sub.index);
    app.broker()
        .subscribe(&sub.topic, &group)
        .await
        .map_err(|e| format!("subscribing to \"{}\": {e}", sub.topic))
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
        atoll_metrics::message_started(sub.topic.as_str(), arrived.elapsed());
        let (app, sub) = (app.clone(), sub.clone());
        tokio::spawn(async move {
            handle(&app, &sub, message).await;
            drop(permit);
        });
    }
    // Let the runs in flight finish.
    let _ = permits.acquire_many(CONCURRENCY as u32).await;
}

async fn handle(app: &Arc<App>, sub: &Subscription, message: Message) {
    let request_id = new_request_id();
    let trace = TraceContext::start();
    let trace_id = trace.trace_id();
    let trigger = Trigger::new(
        request_id.clone(),
        RequestInfo {
            body: message.payload,
            trigger: TriggerKind::Message {
                topic: message.topic.clone(),
            },
            trace: Some(trace),
            ..RequestInfo::default()
        },
    );
    let index = sub.index;
    let outcome = app
        .run_in_lanes(move |m| &m.subscriptions[index].pipeline, trigger)
        .await;
    // Labelled by the subscription's pattern: a wildcard may match any number of topics.
    atoll_metrics::message_handled(sub.topic.as_str(), outcome.result.is_ok());
    match outcome.result {
        Ok(body) => {
            tracing::info!(target: "atoll::message", topic = %message.topic, request_id = %request_id, trace_id = %trace_id, "message handled");
            if let Some(reply_to) = &sub.reply_to
                && let Err(e) = app.broker().publish(reply_to, body).await
            {
                tracing::error!(target: "atoll::message", topic = %message.topic, reply_to = %reply_to, error = %e, "could not publish the reply");
            }
        }
        Err(f) => tracing::error!(
            target: "atoll::message",
            topic = %message.topic,
            request_id = %request_id,
            trace_id = %trace_id,
            function = %f.function,
            status = f.status(),
            error = %f.message(),
            "message failed"
        ),
    }
}
