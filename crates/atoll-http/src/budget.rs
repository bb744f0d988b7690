//! The memory the server may hold in request and response bodies.
//!
//! Functions are bounded by their own memory limits, but the bytes they
//! return, and the bytes clients upload, live in the host until they are
//! consumed or sent. A client that asks for a large response and never
//! reads it, or trickles an upload, holds those bytes for as long as its
//! connection lasts. Every body larger than [`Budget::SMALL`] takes its size
//! from one server-wide budget before it is held and gives it back when it
//! is gone (sent, consumed or dropped with its connection); a body that
//! does not fit is answered 503, so memory stays bounded whatever clients
//! do. Small bodies are not counted: the kernel's socket buffers take them
//! at once, and counting them would cost every request an atomic operation.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes of bodies the server holds at once.
#[derive(Debug)]
pub(crate) struct Budget {
    limit: u64,
    held: AtomicU64,
}

/// A share of the budget, given back when dropped.
#[derive(Debug)]
pub(crate) struct Held {
    budget: Arc<Budget>,
    bytes: u64,
}

impl Budget {
    /// Bodies up to this size are not counted.
    pub(crate) const SMALL: u64 = 64 << 10;

    pub(crate) fn new(limit: u64) -> Arc<Budget> {
        Arc::new(Budget {
            limit,
            held: AtomicU64::new(0),
        })
    }

    /// Takes `bytes` more for `held` (a new share when `None`), or says no
    /// without taking anything. Small totals are free.
    pub(crate) fn grow(self: &Arc<Self>, held: &mut Option<Held>, total: u64) -> bool {
        if total <= Self::SMALL {
            return true;
        }
        let already = held.as_ref().map_or(0, |h| h.bytes);
        let more = total.saturating_sub(already);
        let taken = self
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                now.checked_add(more).filter(|&n| n <= self.limit)
            })
            .is_ok();
        if taken {
            match held {
                Some(h) => h.bytes += more,
                None => {
                    *held = Some(Held {
                        budget: self.clone(),
                        bytes: more,
                    })
                }
            }
        }
        taken
    }

    #[cfg(test)]
    fn in_use(&self) -> u64 {
        self.held.load(Ordering::Acquire)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.budget.held.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_taken_up_to_the_limit_and_given_back_on_drop() {
        let budget = Budget::new(1 << 20);
        let mut a = None;
        assert!(budget.grow(&mut a, 100), "small bodies are free");
        assert!(a.is_none());
        assert!(budget.grow(&mut a, 600 << 10));
        assert!(budget.grow(&mut a, 700 << 10), "growing takes only the difference");
        assert_eq!(budget.in_use(), 700 << 10);
        let mut b = None;
        assert!(!budget.grow(&mut b, 400 << 10), "over the limit");
        assert_eq!(budget.in_use(), 700 << 10, "a refusal takes nothing");
        drop(a);
        assert_eq!(budget.in_use(), 0);
        assert!(budget.grow(&mut b, 400 << 10));
    }
}
