//! Per-function concurrency (`max_concurrency` in the manifest): a
//! semaphore per limited function, taken before its instance is made and
//! held until the invocation has finished (for a streamed component, until
//! its response body has gone). Every way into a function takes it —
//! routes, each step of a pipeline, group members, links, schedules and
//! topics — so a function that waits on a slow backend fills its own slots
//! and no others.
//!
//! A call that finds the slots full waits, in arrival order, for at most
//! the function's `max_queue` (or the caller's deadline, if sooner), then
//! fails with [`Failure::Busy`], which HTTP answers 503 with `Retry-After`.
//! The wait is what keeps a function that calls itself through a link from
//! deadlocking when all its slots hold callers: the inner call times out
//! and the outer one sees a failed link.
//!
//! The counts ([`SlotStats`]) are kept for a metrics endpoint to read.

use atoll_engine::{CallError, Failure};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A limited function's slots.
pub struct Slots {
    /// The app and the function, for the metrics' labels.
    function: Labels,
    semaphore: Arc<Semaphore>,
    limit: u32,
    queue: Duration,
    waiting: AtomicU64,
    refused: AtomicU64,
}

/// One invocation's hold on a slot; dropping it frees the slot.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    function: Labels,
}

/// A function's app and name.
type Labels = Arc<(Arc<str>, Arc<str>)>;

impl Slot {
    fn new(permit: OwnedSemaphorePermit, function: &Labels) -> Slot {
        atoll_metrics::function_slots_in_use(&function.0, &function.1, 1);
        Slot {
            _permit: permit,
            function: function.clone(),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        atoll_metrics::function_slots_in_use(&self.function.0, &self.function.1, -1);
    }
}

/// A limited function's counts at one moment, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotStats {
    /// `max_concurrency`.
    pub limit: u32,
    /// Invocations holding a slot now.
    pub in_flight: u32,
    /// Calls waiting for a slot now.
    pub waiting: u64,
    /// Calls refused since the app loaded, their wait over.
    pub refused: u64,
}

impl Slots {
    pub fn new(app: Arc<str>, function: Arc<str>, limit: u32, queue: Duration) -> Slots {
        atoll_metrics::function_slots(&app, &function, limit);
        Slots {
            function: Arc::new((app, function)),
            semaphore: Arc::new(Semaphore::new(limit as usize)),
            limit,
            queue,
            waiting: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    /// A slot, at once if one is free, else after waiting up to the
    /// function's queue time (or until `until`, if that comes first).
    pub async fn acquire(&self, until: Option<Instant>) -> Result<Slot, CallError> {
        if let Ok(permit) = self.semaphore.clone().try_acquire_owned() {
            return Ok(Slot::new(permit, &self.function));
        }
        let mut wait = self.queue;
        if let Some(until) = until {
            wait = wait.min(until.saturating_duration_since(Instant::now()));
        }
        self.waiting.fetch_add(1, Ordering::Relaxed);
        atoll_metrics::function_slot_waiters(&self.function.0, &self.function.1, 1);
        let waited = tokio::time::timeout(wait, self.semaphore.clone().acquire_owned()).await;
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        atoll_metrics::function_slot_waiters(&self.function.0, &self.function.1, -1);
        match waited {
            Ok(Ok(permit)) => Ok(Slot::new(permit, &self.function)),
            // The semaphore is never closed; treat it as full all the same.
            Ok(Err(_)) | Err(_) => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                Err(CallError::Failed {
                    failure: Failure::Busy {
                        limit: self.limit,
                        waited: wait,
                    },
                    detail: None,
                })
            }
        }
    }

    pub fn stats(&self) -> SlotStats {
        SlotStats {
            limit: self.limit,
            in_flight: self.limit - self.semaphore.available_permits() as u32,
            waiting: self.waiting.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_function_makes_calls_wait_then_refuses_them() {
        let slots = Arc::new(Slots::new(
            Arc::from("app"),
            Arc::from("f"),
            2,
            Duration::from_millis(100),
        ));
        let a = slots.acquire(None).await.unwrap();
        let _b = slots.acquire(None).await.unwrap();
        assert_eq!(slots.stats().in_flight, 2);

        // A slot freed while a call waits goes to it.
        let waiter = tokio::spawn({
            let slots = slots.clone();
            async move { slots.acquire(None).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(slots.stats().waiting, 1);
        drop(a);
        let _c = waiter.await.unwrap().expect("the freed slot goes to the waiting call");

        let started = Instant::now();
        let e = slots.acquire(None).await.err().unwrap();
        assert!(started.elapsed() >= Duration::from_millis(100));
        assert!(matches!(
            e,
            CallError::Failed {
                failure: Failure::Busy { limit: 2, .. },
                ..
            }
        ));
        // The caller's deadline bounds the wait too.
        let started = Instant::now();
        assert!(
            slots
                .acquire(Some(Instant::now() + Duration::from_millis(10)))
                .await
                .is_err()
        );
        assert!(started.elapsed() < Duration::from_millis(90));
        assert_eq!(slots.stats().refused, 2);
        assert_eq!(slots.stats().waiting, 0);
    }
}
