//! One schedule's task: it sleeps until the next tick and runs the pipeline.
//!
//! Alone, a node counts `every` from when it started. In a cluster, ticks
//! are instead aligned to the wall clock (`aligned_tick`), so that every node
//! names the same tick the same way and only one of them runs it.

use crate::cluster::Cluster;
use atoll_caps::spans::{self, Began, SpanKind};
use atoll_caps::trace::TraceContext;
use atoll_manifest::{Schedule, When};
use atoll_runtime::{App, RequestInfo, State, Trigger, TriggerKind, new_request_id};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::watch;

/// When the tick after `now` is due: `every` counts from the previous tick
/// (skipping those missed while a run was slow), cron from the clock (UTC).
fn next_tick(when: &When, previous: Instant, now: Instant) -> Instant {
    match when {
        When::Every(period) => {
            let mut next = previous + *period;
            if next <= now {
                let missed = (now - previous).as_nanos() / period.as_nanos().max(1);
                next = previous + *period * (missed as u32 + 1);
            }
            next
        }
        When::Cron(expr) => {
            let cron: croner::Cron = expr.parse().expect("validated with the manifest");
            let utc = chrono::Utc::now();
            let wait = cron
                .find_next_occurrence(&utc, false)
                .ok()
                .and_then(|t| (t - utc).to_std().ok())
                .unwrap_or(Duration::from_secs(60));
            now + wait
        }
    }
}

/// Shortest lease on a tick: nodes' clocks differ a little, and a node whose
/// clock lags must still find the key of a tick another node has run.
const MIN_LEASE: Duration = Duration::from_secs(5);
/// Longest lease: no two nodes' clocks are a day apart, so longer would only
/// hold Redis memory.
const MAX_LEASE: Duration = Duration::from_secs(24 * 60 * 60);

/// A tick every node of a cluster names alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AlignedTick {
    /// Since the Unix epoch.
    pub at: Duration,
    /// How long its claim lasts: until the next tick, within
    /// `MIN_LEASE..=MAX_LEASE`.
    pub lease: Duration,
}

impl AlignedTick {
    /// The tick's name in keys and logs: milliseconds since the Unix epoch
    /// (`every` is at least 100 ms, so no two ticks share one).
    pub fn id(&self) -> u64 {
        self.at.as_millis() as u64
    }
}

/// The first tick after both `now` and `last` (both since the Unix epoch):
/// for `every`, tick n is at n × period; for cron, the next occurrence
/// (UTC). `None` when a cron expression has no next occurrence.
pub(crate) fn aligned_tick(when: &When, now: Duration, last: Option<Duration>) -> Option<AlignedTick> {
    let after = last.map_or(now, |l| l.max(now));
    match when {
        When::Every(period) => {
            let p = period.as_nanos().max(1);
            let n = after.as_nanos() / p + 1;
            let at = nanos(n * p)?;
            Some(AlignedTick {
                at,
                lease: (*period).clamp(MIN_LEASE, MAX_LEASE),
            })
        }
        When::Cron(expr) => {
            let cron: croner::Cron = expr.parse().expect("validated with the manifest");
            let from = DateTime::<Utc>::from_timestamp(after.as_secs() as i64, after.subsec_nanos())?;
            let next = cron.find_next_occurrence(&from, false).ok()?;
            let at = (next - DateTime::UNIX_EPOCH).to_std().ok()?;
            let lease = cron
                .find_next_occurrence(&next, false)
                .ok()
                .and_then(|after| (after - next).to_std().ok())
                .unwrap_or(MAX_LEASE);
            Some(AlignedTick {
                at,
                lease: lease.clamp(MIN_LEASE, MAX_LEASE),
            })
        }
    }
}

fn nanos(n: u128) -> Option<Duration> {
    Some(Duration::new(
        u64::try_from(n / 1_000_000_000).ok()?,
        (n % 1_000_000_000) as u32,
    ))
}

fn since_epoch() -> Duration {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
}

pub(crate) async fn run(
    app: Arc<App>,
    schedule: Schedule,
    cluster: Option<Cluster>,
    mut stopped: watch::Receiver<bool>,
) {
    let seed: State = schedule
        .state
        .iter()
        .map(|(k, v)| (k.clone(), Bytes::from(v.clone())))
        .collect();
    let mut previous = Instant::now();
    let mut last: Option<Duration> = None;
    loop {
        let (due, tick) = match &cluster {
            None => (next_tick(&schedule.when, previous, Instant::now()), None),
            Some(_) => {
                let now = since_epoch();
                match aligned_tick(&schedule.when, now, last) {
                    Some(t) => (Instant::now() + t.at.saturating_sub(now), Some(t)),
                    // A cron expression with no next occurrence: look again later.
                    None => (Instant::now() + Duration::from_secs(60), None),
                }
            }
        };
        tokio::select! {
            _ = tokio::time::sleep_until(due.into()) => {}
            _ = stopped.changed() => return,
        }
        previous = due;
        if let Some(cluster) = &cluster {
            let Some(tick) = tick else { continue };
            last = Some(tick.at);
            if !claim(&app, &schedule, cluster, tick).await {
                continue;
            }
        }
        run_once(&app, &schedule, &seed, cluster.as_ref().map(Cluster::node), tick).await;
        if *stopped.borrow() {
            return;
        }
    }
}

/// Whether this node runs `tick`. Every outcome but winning is logged
/// here: another node having it is routine (debug); Redis unreachable means
/// no node runs it, which whoever operates the cluster must hear about.
async fn claim(app: &App, schedule: &Schedule, cluster: &Cluster, tick: AlignedTick) -> bool {
    let key = format!(
        "atoll:{}:schedule:{}:{}",
        app.manifest.app.name,
        schedule.name,
        tick.id()
    );
    match cluster.claim(&key, tick.lease).await {
        Ok(won) => {
            if !won {
                tracing::debug!(target: "atoll::schedule", schedule = %schedule.name, tick = tick.id(), node = %cluster.node(), "schedule tick taken by another node");
            }
            won
        }
        Err(e) => {
            tracing::warn!(
                target: "atoll::schedule",
                schedule = %schedule.name,
                tick = tick.id(),
                node = %cluster.node(),
                coordinator = %cluster.coordinator(),
                error = %e,
                "schedule tick skipped: the cluster coordinator is unreachable, so no node runs it"
            );
            false
        }
    }
}

async fn run_once(app: &Arc<App>, schedule: &Schedule, seed: &State, node: Option<&str>, tick: Option<AlignedTick>) {
    let tick = tick.map(|t| t.id());
    // Display, as the other fields: a text log shows `node=web-1-...`, unquoted.
    let node = node.map(tracing::field::display);
    let request_id = new_request_id();
    let trace = TraceContext::start();
    let trace_id = trace.trace_id();
    let exported = spans::wanted(Some(&trace)).then(|| (trace.clone(), Began::now()));
    let trigger = Trigger {
        state: seed.clone(),
        ..Trigger::new(
            request_id.clone(),
            RequestInfo {
                trigger: TriggerKind::Schedule {
                    name: schedule.name.clone(),
                },
                trace: Some(trace),
                ..RequestInfo::default()
            },
        )
    };
    let started = Instant::now();
    let name = schedule.name.clone();
    let outcome = app
        .run_in_lanes(
            move |m| {
                &m.schedules
                    .iter()
                    .find(|s| s.name == name)
                    .expect("this app's schedule")
                    .pipeline
            },
            trigger,
        )
        .await;
    let duration_ms = started.elapsed().as_millis() as u64;
    let app_name = &app.manifest.app.name;
    atoll_metrics::schedule_run(app_name, &schedule.name, outcome.result.is_ok());
    if let Some((trace, began)) = exported {
        // The run is the trace's root: its steps' invocations hang under it.
        let mut span = began.until_now(
            &trace,
            trace.span_id(),
            SpanKind::Internal,
            format!("schedule {}", schedule.name),
        );
        span.attributes.push(("atoll.app", app_name.clone().into()));
        span.attributes.push(("atoll.schedule", schedule.name.clone().into()));
        span.attributes.push(("atoll.request_id", request_id.clone().into()));
        span.error = outcome.result.as_ref().err().map(|f| f.message());
        spans::record(span);
    }
    match &outcome.result {
        Ok(_) => {
            tracing::info!(target: "atoll::schedule", app = %app_name, schedule = %schedule.name, request_id = %request_id, trace_id = %trace_id, duration_ms, node, tick, "schedule ran")
        }
        Err(f) => tracing::error!(
            target: "atoll::schedule",
            app = %app_name,
            schedule = %schedule.name,
            request_id = %request_id,
            trace_id = %trace_id,
            duration_ms,
            node,
            tick,
            function = %f.function,
            status = f.status(),
            error = %f.message(),
            "schedule failed"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_skips_ticks_missed_during_a_slow_run() {
        let t0 = Instant::now();
        let every = When::Every(Duration::from_secs(10));
        assert_eq!(
            next_tick(&every, t0, t0 + Duration::from_secs(1)),
            t0 + Duration::from_secs(10)
        );
        // A run that took 35 s: the ticks at 10, 20 and 30 s are gone.
        assert_eq!(
            next_tick(&every, t0, t0 + Duration::from_secs(35)),
            t0 + Duration::from_secs(40)
        );
    }

    #[test]
    fn cron_waits_for_the_next_matching_time() {
        let now = Instant::now();
        let next = next_tick(&When::Cron("* * * * * *".into()), now, now);
        assert!(next > now && next <= now + Duration::from_secs(1), "every second");
        let next = next_tick(&When::Cron("0 0 1 1 *".into()), now, now);
        assert!(next > now + Duration::from_secs(60), "once a year");
    }

    #[test]
    fn aligned_ticks_are_multiples_of_the_period_since_the_epoch() {
        let every = When::Every(Duration::from_millis(250));
        let tick = |now_ms: u64, last_ms: Option<u64>| {
            aligned_tick(
                &every,
                Duration::from_millis(now_ms),
                last_ms.map(Duration::from_millis),
            )
            .unwrap()
        };
        // Two nodes started at different moments name the same next tick.
        assert_eq!(tick(1_000_010, None).id(), 1_000_250);
        assert_eq!(tick(1_000_249, None).id(), 1_000_250);
        // Exactly on a tick: that one is past, the next is due.
        assert_eq!(tick(1_000_250, None).id(), 1_000_500);
        // Ticks missed during a slow run are skipped, not queued.
        assert_eq!(tick(1_001_100, Some(1_000_250)).id(), 1_001_250);
        // A node that woke early, or whose clock stepped back, still never
        // names a tick it has had again.
        assert_eq!(tick(1_000_200, Some(1_000_250)).id(), 1_000_500);
        assert_eq!(tick(1_000_010, None).lease, MIN_LEASE, "short periods get the floor");

        let hourly = When::Every(Duration::from_secs(3600));
        let t = aligned_tick(&hourly, Duration::from_secs(7200 + 59), None).unwrap();
        assert_eq!(
            (t.at, t.lease),
            (Duration::from_secs(10_800), Duration::from_secs(3600))
        );
        let weekly = When::Every(Duration::from_secs(7 * 86_400));
        assert_eq!(aligned_tick(&weekly, Duration::ZERO, None).unwrap().lease, MAX_LEASE);
    }

    #[test]
    fn aligned_cron_ticks_are_the_occurrences_leased_until_the_next() {
        // 2024-01-01T00:00:00Z
        let new_year = Duration::from_secs(1_704_067_200);
        let quarter_hourly = When::Cron("*/15 * * * *".into());
        let t = aligned_tick(&quarter_hourly, new_year + Duration::from_secs(61), None).unwrap();
        assert_eq!(t.at, new_year + Duration::from_secs(15 * 60));
        assert_eq!(t.lease, Duration::from_secs(15 * 60));
        let next = aligned_tick(&quarter_hourly, new_year, Some(t.at)).unwrap();
        assert_eq!(
            next.at,
            new_year + Duration::from_secs(30 * 60),
            "after the last tick, not the clock"
        );
        let yearly = aligned_tick(&When::Cron("0 0 1 1 *".into()), new_year, None).unwrap();
        assert_eq!(yearly.lease, MAX_LEASE, "capped");
        let every_second = aligned_tick(&When::Cron("* * * * * *".into()), new_year, None).unwrap();
        assert_eq!(every_second.lease, MIN_LEASE, "floored");
    }
}
