//! WAGI: any WASI command module (a Rust `wasm32-wasip1` bin, C through
//! clang and wasi-libc, anything exporting `_start`) as a CGI handler, the
//! way WAGI and Spin's `wagi` executor run them, on Atoll's engine and
//! grants.
//!
//! A program gets the request as CGI/1.1 does: variables in its environment
//! ([`cgi`]), query items as arguments, the payload on stdin. It answers on
//! stdout with a CGI header block, a blank line and the body ([`response`]).
//! Every request runs `_start` in a fresh instance from a pre-linked
//! [`wasmtime::InstancePre`], under the function's deadline and memory
//! limit; a trap, a non-zero exit, a loop or a memory bomb fails only that
//! request. The sandbox holds nothing of the host: the environment is the
//! CGI variables plus the variables the function is granted (`vars`),
//! `static/` is preopened read-only only with the `files` grant, stderr goes
//! to the host log only with the `log` grant, and there is no network.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use atoll_engine::{Engine, EngineConfig, Limits};
//! let engine = Engine::new(EngineConfig::default())?;
//! let abi = atoll_wagi::WagiAbi::new(&engine)?;
//! let wasm = std::fs::read("hello.wasm")?;
//! let limits = Limits { timeout: std::time::Duration::from_secs(5), memory: 64 << 20 };
//! let function = abi.load(&wasm, limits, 32 << 20)?;
//! let inv = atoll_caps::Invocation::new("hello", "req-1", Default::default(), Default::default());
//! let out = function.invoke(inv, "request body".into(), None).await;
//! println!("{}", String::from_utf8_lossy(&out.result?));
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod cgi;
mod check;
mod function;
pub mod response;
mod stdio;

pub use check::LoadError;
pub use function::{FunctionInfo, Invoked, STATIC_MOUNT, Setting, Teardown, WagiAbi, WagiFunction, WagiState};
