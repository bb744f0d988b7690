//! What one invocation may consume, and why it stopped when it did.

use crate::lanes;
use std::time::{Duration, Instant};
use wasmtime::{ResourceLimiterAsync, Store, Trap, UpdateDeadline};

/// Per-function limits from the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub timeout: Duration,
    pub memory: u64,
}

/// Caps linear memory and remembers whether the cap was hit, so an
/// out-of-memory trap is reported as that rather than as a generic crash.
/// It is asynchronous so that growing past the fast lane's budget can move
/// the invocation to the slow lane before the memory exists (see
/// [`crate::lanes`]).
#[derive(Debug)]
pub struct InstanceLimiter {
    memory_limit: usize,
    hit: bool,
}

impl InstanceLimiter {
    pub fn new(memory_limit: u64) -> Self {
        InstanceLimiter {
            memory_limit: usize::try_from(memory_limit).unwrap_or(usize::MAX),
            hit: false,
        }
    }

    pub fn memory_limit_hit(&self) -> bool {
        self.hit
    }
}

#[async_trait::async_trait]
impl ResourceLimiterAsync for InstanceLimiter {
    async fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_limit {
            self.hit = true;
            return Ok(false);
        }
        if desired > lanes::FAST_LANE_MEMORY && lanes::ask_to_move() {
            lanes::yield_for_move().await;
        }
        Ok(true)
    }

    async fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables hold function references: 100k entries is far beyond any
        // real guest and keeps a hostile one from eating host memory.
        Ok(desired <= 100_000)
    }
}

/// Raised from the epoch callback once the invocation's deadline has passed.
#[derive(Debug, Clone, Copy)]
pub struct DeadlineExceeded;

impl std::fmt::Display for DeadlineExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("deadline exceeded")
    }
}

impl std::error::Error for DeadlineExceeded {}

impl Limits {
    /// Arms `store` with this deadline (from now, or `until` if that is
    /// sooner) and memory cap. The guest yields to the async runtime on
    /// every epoch tick: on the fast lane to move to the slow lane, there
    /// to share its thread with the other long guests until its deadline
    /// kills it.
    pub fn apply<T: 'static>(
        &self,
        store: &mut Store<T>,
        limiter: fn(&mut T) -> &mut InstanceLimiter,
        until: Option<Instant>,
    ) -> Instant {
        let started = Instant::now();
        let own = started + self.timeout;
        let deadline = until.map_or(own, |u| u.min(own));
        store.limiter_async(move |t| limiter(t) as &mut dyn ResourceLimiterAsync);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Err(wasmtime::Error::new(DeadlineExceeded))
            } else if started.elapsed() < lanes::FAST_LANE_TIME {
                // The tick came soon after the start: a quick guest, not a long one.
                Ok(UpdateDeadline::Continue(1))
            } else if lanes::ask_to_move() {
                Ok(UpdateDeadline::YieldCustom(1, Box::pin(lanes::yield_for_move())))
            } else {
                // Wasmtime's plain `Yield` wakes the task at once, and tokio's
                // LIFO slot may poll it again before anything else: a looping
                // guest would starve its worker. `yield_now` defers the wake
                // to the back of the run queue.
                Ok(UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now())))
            }
        });
        deadline
    }
}

/// Why a guest invocation failed, as the host should report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The deadline passed (the guest looped or waited too long).
    Timeout,
    /// The guest asked for more memory than its limit and then trapped.
    OutOfMemory { limit: u64 },
    /// The guest trapped (panic, unreachable, out-of-bounds access, ...).
    Trap { message: String },
    /// The guest exited through WASI `proc_exit` with a non-zero code.
    Exit { code: i32 },
    /// Every instance slot is in use.
    AtCapacity,
    /// The function is at its own concurrency limit, and no slot freed
    /// within the time a call may wait for one.
    Busy { limit: u32, waited: std::time::Duration },
    /// Anything else the host raised while running the guest.
    Host { message: String },
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Timeout => f.write_str("the function exceeded its deadline"),
            Failure::OutOfMemory { limit } => write!(
                f,
                "the function exceeded its memory limit of {} and trapped",
                human_bytes(*limit)
            ),
            Failure::Trap { message } => write!(f, "the function trapped: {message}"),
            Failure::Exit { code } => write!(f, "the function exited with code {code}"),
            Failure::AtCapacity => f.write_str("no instance available: the server is at capacity"),
            Failure::Busy { limit, waited } => write!(
                f,
                "the function is at its max_concurrency of {limit} and no slot freed within {} ms; retry shortly",
                waited.as_millis()
            ),
            Failure::Host { message } => f.write_str(message),
        }
    }
}

/// Classifies an error from instantiating or calling a guest.
/// `exit_code` extracts a WASI exit status if the ABI links WASI.
pub fn classify_failure(
    err: &wasmtime::Error,
    limiter: &InstanceLimiter,
    exit_code: impl Fn(&wasmtime::Error) -> Option<i32>,
) -> Failure {
    if err.downcast_ref::<DeadlineExceeded>().is_some() {
        return Failure::Timeout;
    }
    if let Some(code) = exit_code(err) {
        return Failure::Exit { code };
    }
    if let Some(trap) = err.downcast_ref::<Trap>() {
        if limiter.memory_limit_hit() {
            return Failure::OutOfMemory {
                limit: limiter.memory_limit as u64,
            };
        }
        return Failure::Trap {
            message: trap_message(*trap, err),
        };
    }
    if limiter.memory_limit_hit() {
        return Failure::OutOfMemory {
            limit: limiter.memory_limit as u64,
        };
    }
    let text = format!("{err:#}");
    if text.contains("maximum concurrent") || text.contains("pooling allocator") {
        return Failure::AtCapacity;
    }
    // A host function's own refusal, without the wasm backtrace Wasmtime
    // wraps around it: the message is what the user can act on.
    Failure::Host {
        message: err.root_cause().to_string(),
    }
}

/// The trap's own words, followed by the top of the guest's stack where
/// Wasmtime captured one (function names make a panic findable).
fn trap_message(trap: Trap, err: &wasmtime::Error) -> String {
    let mut msg = trap.to_string();
    if let Some(bt) = err.downcast_ref::<wasmtime::WasmBacktrace>() {
        let frames: Vec<String> = bt
            .frames()
            .iter()
            .filter_map(|f| f.func_name().map(|n| n.to_string()))
            .take(3)
            .collect();
        if !frames.is_empty() {
            msg.push_str(" in ");
            msg.push_str(&frames.join(" < "));
        }
    }
    msg
}

pub(crate) fn human_bytes(bytes: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (unit, size) in UNITS {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{}{unit}", bytes / size);
        }
    }
    format!("{bytes} bytes")
}
