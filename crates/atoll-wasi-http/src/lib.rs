//! Components exporting `wasi:http/incoming-handler@0.2.x` (what
//! `wasmtime serve` accepts, what Spin's and wasmCloud's HTTP examples
//! are, what `cargo component` or the `wasi` crate build for
//! `wasm32-wasip2`), run unmodified on Atoll's engine and grants.
//!
//! Every request runs `handle` in a fresh instance from a pre-linked
//! [`ProxyPre`](wasmtime_wasi_http::p2::bindings::ProxyPre), under the
//! function's deadline and memory limit; a trap, a loop or a memory bomb
//! fails only that request. The response's status and headers become the
//! step's, its body the step's output, so a component can be any step of
//! a pipeline.
//!
//! What a component reaches is what its function is granted, through the
//! same backends as waPC functions: outbound HTTP through the same policy
//! ([`outbound`]), and nothing of the host otherwise (no environment, no
//! sockets, `static/` read-only only with `files`). Imports of another
//! platform's interfaces (`fermyon:spin/*`, `wasmcloud:*`) and of anything
//! Atoll does not provide are refused at load, naming the interface.

#![warn(missing_docs)]

mod check;
mod exchange;
mod function;
mod imports;
pub mod outbound;
mod state;
mod stream;
mod wasi_state;

pub use check::LoadError;
pub use function::{FunctionInfo, Invoked, STATIC_MOUNT, Setting, Teardown, WasiHttpAbi, WasiHttpFunction};
pub use imports::{Reach, ReachKind, component_imports, import_reach};
pub use state::ComponentState;
pub use stream::{BoxError, StreamedBody, Streaming};
