//! The waPC guest ABI, as `wapc-guest` 1.x guests (Rust, AssemblyScript,
//! TinyGo, Zig) expect it, on Atoll's engine and capability layer.
//!
//! Every invocation instantiates a fresh instance from a pre-linked
//! [`wasmtime::InstancePre`], so no state leaks between requests. A guest's
//! init (`_initialize`, `_start`, `wapc_init`, in that order, each if
//! exported) is pre-initialised once at load when it can be; otherwise it
//! runs on every instance and the reason is logged. `__host_call` goes to
//! [`atoll_caps::Invocation::host_call`], where grants are enforced.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use atoll_engine::{Engine, EngineConfig, Limits};
//! let engine = Engine::new(EngineConfig::default())?;
//! let abi = atoll_wapc::WapcAbi::new(&engine)?;
//! let wasm = std::fs::read("echo.wasm")?;
//! let limits = Limits { timeout: std::time::Duration::from_secs(5), memory: 64 << 20 };
//! let function = abi.load("echo", &wasm, limits, 16 << 20).await?;
//! let inv = atoll_caps::Invocation::new("echo", "req-1", Default::default(), Default::default());
//! let out = function.invoke(inv, "ping", "hello".into()).await;
//! assert_eq!(out.result.unwrap(), b"hello");
//! # Ok(()) }
//! ```

mod check;
mod function;
mod imports;
mod state;
mod stdio;

pub use atoll_engine::CallError;
pub use check::{LoadError, Shape};
pub use function::{FunctionInfo, InitMode, Invoked, Teardown, WapcAbi, WapcFunction};
pub use state::WapcState;
