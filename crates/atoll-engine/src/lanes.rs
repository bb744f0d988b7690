//! Two lanes for guest code, so a guest can never starve the threads that
//! accept connections and write responses.
//!
//! Every invocation starts on the **fast lane**: inline, on whichever thread
//! polls it (for HTTP, the worker that owns the connection). That costs
//! nothing, and nearly every invocation finishes there in microseconds. An
//! invocation leaves the fast lane for the **slow lane**, a small pool of
//! threads of its own at a lower scheduling priority, the moment it shows it
//! may take long:
//! - it has run for [`FAST_LANE_TIME`] (the epoch callback asks to move), or
//! - it asks for more linear memory than [`FAST_LANE_MEMORY`] (the memory
//!   limiter asks to move before the memory exists). This is what bounds
//!   the one thing epoch interruption cannot stop, a single bulk-memory
//!   instruction (`memory.fill` of 900 MiB runs for a second): on the fast
//!   lane such an instruction can touch at most this much memory.
//!
//! So a fast-lane thread runs guest code for at most `FAST_LANE_TIME` plus
//! a tick, plus one instruction over at most `FAST_LANE_MEMORY`, and the operating system,
//! not the guests, shares the CPU between short requests and long ones.
//!
//! A move is asked for through a thread-local flag and carried out by
//! [`Lanes::run`] between two polls: the guest's fiber yields (so nothing of
//! it is on the stack), `run` sees the flag and hands the whole future to
//! the slow lane. Futures polled outside `run` (loading, `atoll call`) never
//! see the flag and simply keep running where they are.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

/// How long an invocation may run on the fast lane. Measured from its
/// start, so a quick guest that happens to be running when the epoch ticks
/// stays where it is.
pub const FAST_LANE_TIME: std::time::Duration = std::time::Duration::from_millis(2);

/// Linear memory an invocation may have while it runs on the fast lane;
/// growing past this moves it to the slow lane first. A bulk-memory
/// instruction over this much fresh memory costs a few milliseconds of page
/// faults, the worst a fast-lane thread can be held by one instruction.
pub const FAST_LANE_MEMORY: usize = 16 << 20;

thread_local! {
    /// Set while [`Lanes::run`] polls its future on this thread.
    static ON_FAST_LANE: Cell<bool> = const { Cell::new(false) };
    /// Set by guest code (through the engine's callbacks) to ask `run` to
    /// move the current invocation to the slow lane at its next yield.
    static MOVE_ASKED: Cell<bool> = const { Cell::new(false) };
}

/// Whether the code running now is on the fast lane.
pub fn on_fast_lane() -> bool {
    ON_FAST_LANE.with(Cell::get)
}

/// Asks for the current invocation to move to the slow lane at its next
/// yield. Does nothing off the fast lane. Returns whether it asked.
pub fn ask_to_move() -> bool {
    if on_fast_lane() {
        MOVE_ASKED.with(|m| m.set(true));
        true
    } else {
        false
    }
}

/// Yields once so a move asked for with [`ask_to_move`] happens before the
/// caller goes on.
pub(crate) async fn yield_for_move() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

/// Which lane a future finished on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    Fast,
    Slow,
}

/// The slow lane's threads, started on the first move.
#[derive(Default)]
pub struct Lanes {
    slow: OnceLock<SlowLane>,
}

impl std::fmt::Debug for Lanes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lanes")
            .field("started", &self.slow.get().is_some())
            .finish()
    }
}

struct SlowLane {
    // `Option` so `Drop` can take it: a runtime dropped inside an async
    // context panics, `shutdown_background` does not.
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for SlowLane {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Lanes {
    /// Runs `fut` on the fast lane, moving it to the slow lane if its guest
    /// code asks to. Dropping the returned future cancels `fut` on either
    /// lane.
    pub async fn run<F>(&self, fut: F) -> (F::Output, Lane)
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let mut fut = Box::pin(fut);
        let inline = std::future::poll_fn(|cx| poll_fast(fut.as_mut(), cx)).await;
        match inline {
            Some(out) => (out, Lane::Fast),
            None => {
                let task = AbortOnDrop(self.handle().spawn(fut));
                (task.await, Lane::Slow)
            }
        }
    }

    /// Drops `value` on the slow lane: for what a moved invocation leaves
    /// behind (instances whose memory may be large to reset).
    pub fn drop_on_slow_lane<T: Send + 'static>(&self, value: T) {
        self.handle().spawn(async move { drop(value) });
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        self.slow
            .get_or_init(|| {
                // More threads than cores: a moved invocation should not wait
                // for a long instruction of another to end, and the kernel
                // shares the CPU between them at the lane's low priority.
                let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
                let threads = (4 * cores).max(8);
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(threads)
                    .thread_name("atoll-slow-lane")
                    .on_thread_start(lower_priority)
                    .enable_all()
                    .build()
                    .expect("starting the slow lane's threads");
                SlowLane { runtime: Some(runtime) }
            })
            .runtime
            .as_ref()
            .expect("present until dropped")
            .handle()
    }
}

/// One poll on the fast lane: `Some` when done, `None` when the guest asked
/// to move, `Pending` otherwise.
fn poll_fast<F: Future + ?Sized>(fut: Pin<&mut F>, cx: &mut Context<'_>) -> Poll<Option<F::Output>> {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            ON_FAST_LANE.with(|f| f.set(self.0));
        }
    }
    let _restore = Restore(ON_FAST_LANE.with(|f| f.replace(true)));
    MOVE_ASKED.with(|m| m.set(false));
    match fut.poll(cx) {
        Poll::Ready(out) => Poll::Ready(Some(out)),
        Poll::Pending if MOVE_ASKED.with(|m| m.replace(false)) => Poll::Ready(None),
        Poll::Pending => Poll::Pending,
    }
}

/// Long guests share the CPU with the server's own threads, but the
/// short requests on those threads go first (nice 10: about a tenth of the
/// CPU share of a normal thread when both want it).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain syscalls on the calling thread, no pointers.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 10);
    }
}

/// A slow-lane task that is cancelled when its waiter goes away (a client
/// that disconnected), instead of running on to its deadline.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Future for AbortOnDrop<T> {
    type Output = T;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        match Pin::new(&mut self.0).poll(cx) {
            Poll::Ready(Ok(v)) => Poll::Ready(v),
            Poll::Ready(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Poll::Ready(Err(e)) => panic!("a slow-lane task was cancelled while awaited: {e}"),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_future_that_never_asks_stays_on_the_fast_lane() {
        let lanes = Lanes::default();
        let (out, lane) = lanes
            .run(async {
                tokio::task::yield_now().await;
                std::thread::current().name().map(str::to_string)
            })
            .await;
        assert_eq!(lane, Lane::Fast);
        assert_ne!(out.as_deref(), Some("atoll-slow-lane"));
        assert!(lanes.slow.get().is_none(), "no threads started for the slow lane");
    }

    #[tokio::test]
    async fn asking_moves_the_rest_of_the_future_to_the_slow_lane() {
        let lanes = Lanes::default();
        let (out, lane) = lanes
            .run(async {
                let before = std::thread::current().name().map(str::to_string);
                assert!(on_fast_lane());
                assert!(ask_to_move());
                yield_for_move().await;
                let after = std::thread::current().name().map(str::to_string);
                (before, after, on_fast_lane())
            })
            .await;
        assert_eq!(lane, Lane::Slow);
        assert_ne!(out.0.as_deref(), Some("atoll-slow-lane"));
        assert_eq!(out.1.as_deref(), Some("atoll-slow-lane"));
        assert!(!out.2, "the slow lane is not the fast lane");
    }

    #[test]
    fn asking_outside_run_does_nothing() {
        assert!(!on_fast_lane());
        assert!(!ask_to_move());
    }
}
