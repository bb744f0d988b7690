use atoll_manifest::{Schedule, When};
use atoll_runtime::{App, RequestInfo, State, Trigger, TriggerKind, new_request_id};
use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant};
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

pub(crate) async fn run(app: Arc<App>, schedule: Schedule, mut stopped: watch::Receiver<bool>) {
    let seed: State = schedule
        .state
        .iter()
        .map(|(k, v)| (k.clone(), Bytes::from(v.clone())))
        .collect();
    let mut previous = Instant::now();
    loop {
        let due = next_tick(&schedule.when, previous, Instant::now());
        tokio::select! {
            _ = tokio::time::sleep_until(due.into()) => {}
            _ = stopped.changed() => return,
        }
        previous = due;
        let request_id = new_request_id();
        let trigger = Trigger {
            state: seed.clone(),
            ..Trigger::new(
                request_id.clone(),
                RequestInfo {
                    trigger: TriggerKind::Schedule {
                        name: schedule.name.clone(),
                    },
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
        match &outcome.result {
            Ok(_) => {
                tracing::info!(target: "atoll::schedule", schedule = %schedule.name, request_id = %request_id, duration_ms, "schedule ran")
            }
            Err(f) => tracing::error!(
                target: "atoll::schedule",
                schedule = %schedule.name,
                request_id = %request_id,
                duration_ms,
                function = %f.function,
                status = f.status(),
                error = %f.message(),
                "schedule failed"
            ),
        }
        if *stopped.borrow() {
            return;
        }
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
}
