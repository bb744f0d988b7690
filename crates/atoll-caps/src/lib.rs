//! The capability layer: everything a guest can reach outside its sandbox,
//! implemented once and adapted by every ABI.
//!
//! A guest asks for a capability with `(binding, namespace, operation,
//! payload)`; payloads and results are MessagePack. [`Invocation::host_call`]
//! is the single entry point, and the grant check happens there, so no ABI
//! adapter can route around it. Namespaces that only expose the
//! invocation's own input and output (`request`, `response`) need no grant;
//! every other one is denied unless the manifest grants it.
//!
//! ```
//! # tokio_test();
//! # fn tokio_test() {}
//! use atoll_caps::{Grants, Invocation, RequestInfo};
//! use std::sync::Arc;
//! let mut inv = Invocation::new("echo", "req-1", Arc::new(Grants::default()), Arc::new(RequestInfo::default()));
//! let err = futures_lite_block_on(inv.host_call("", "log", "info", b"\xa2hi")).unwrap_err();
//! assert!(err.to_string().contains("not granted"));
//! # fn futures_lite_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     let waker = std::task::Waker::noop();
//! #     let mut cx = std::task::Context::from_waker(&waker);
//! #     let mut f = std::pin::pin!(f);
//! #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } }
//! # }
//! ```

mod capability;
mod error;
pub mod files;
pub mod http;
mod invocation;
pub mod kv;
pub mod links;
pub mod log;
pub mod msg;
mod namespaces;
pub mod reachable;
mod services;
pub mod spans;
pub mod sql;
pub mod tls;
pub mod trace;
pub mod vars;
mod wire;

pub use capability::{BuildContext, HostCapability};
pub use error::HostCallError;
pub use invocation::{Invocation, RequestInfo, ResponseParts, State, StateView, TriggerKind};
pub use services::{AppFiles, Grants, NAMESPACES, Services};
