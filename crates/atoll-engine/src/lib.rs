//! Atoll's WebAssembly engine: one Wasmtime [`Engine`] per process, tuned for
//! a fresh instance per invocation.
//!
//! What it gives the ABI adapters:
//! - the pooling instance allocator with copy-on-write memory images, pages
//!   kept resident between uses and (on Linux 6.7+) `PAGEMAP_SCAN` so only
//!   dirtied pages are reset: instantiation costs microseconds;
//! - an on-disk compile cache keyed by the module's SHA-256, the variant of
//!   preparation (e.g. pre-initialised) and the engine's compatibility hash,
//!   so a restart does not recompile;
//! - [`snapshot`]: pre-initialisation with Wizer, so a guest's init code runs
//!   once at load instead of on every request;
//! - per-invocation [`Limits`]: an epoch-based deadline that also yields to
//!   the async runtime so a looping guest cannot starve others, and a memory
//!   ceiling whose breach is reported as such;
//! - [`Lanes`]: invocations start inline and move to threads of their own
//!   once they run long or grow large, so guests never hold up the threads
//!   that serve connections.
//!
//! The engine knows nothing about guest ABIs, HTTP or capabilities.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let engine = atoll_engine::Engine::new(atoll_engine::EngineConfig::default())?;
//! let wasm = std::fs::read("echo.wasm")?;
//! let key = atoll_engine::ModuleKey::new(&wasm, "plain");
//! let module = engine.compile_cached(&key, "plain", &wasm)?;
//! # let _ = module; Ok(()) }
//! ```

mod cache;
mod call_error;
mod config;
mod engine;
pub mod lanes;
mod limits;
mod snapshot;
mod ticker;

pub use cache::{CachedModule, ModuleKey};
pub use call_error::CallError;
pub use config::EngineConfig;
pub use engine::{Engine, EngineError, WASMTIME_VERSION};
pub use lanes::{Lane, Lanes};
pub use limits::{DeadlineExceeded, Failure, InstanceLimiter, Limits, classify_failure};
pub use snapshot::snapshot;

pub use wasmtime;
