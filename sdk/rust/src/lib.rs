//! Write [Atoll](https://example.invalid/atoll) functions in Rust.
//!
//! A function is a plain Rust function from [`Request`] to
//! `Result<impl IntoResponse>`, registered in one line:
//!
//! ```ignore
//! use atoll_sdk::{Request, Response, Result};
//!
//! atoll_sdk::handler!(hello);
//!
//! fn hello(req: Request) -> Result<Response> {
//!     let name = req.param("name").unwrap_or("world").to_string();
//!     atoll_sdk::log::info(format!("greeting {name}"));
//!     Ok(Response::text(format!("Hello, {name}!")).header("x-greeted", &name))
//! }
//! ```
//!
//! Capabilities, each usable only if the manifest grants it: [`kv`],
//! [`sql`], [`http`], [`vars`], [`files`], [`msg`], [`log`]. In a pipeline, [`state`]
//! holds earlier steps' outputs.
//!
//! Under the hood this is a plain waPC guest built on `wapc-guest`: the
//! request body is the call's payload, the response body its result, and
//! everything else (request metadata, response headers, logging) goes
//! through `__host_call` with MessagePack payloads, as documented in the
//! Atoll README. Functions in other languages can do the same by hand.

mod error;
pub mod files;
pub mod host;
pub mod http;
pub mod kv;
pub mod log;
pub mod msg;
mod request;
mod response;
pub mod sql;
pub mod state;
pub mod vars;

pub use error::{Error, Result};
pub use request::Request;
pub use response::{IntoResponse, Response};

/// Registers `f` as the handler of the default operation, `handle`.
///
/// ```ignore
/// atoll_sdk::handler!(my_function);
/// ```
#[macro_export]
macro_rules! handler {
    ($f:path) => {
        $crate::handlers! { "handle" => $f }
    };
}

/// Registers one handler per waPC operation.
///
/// ```ignore
/// atoll_sdk::handlers! { "handle" => index, "ping" => ping }
/// ```
#[macro_export]
macro_rules! handlers {
    ($($op:literal => $f:path),+ $(,)?) => {
        #[unsafe(no_mangle)]
        pub extern "C" fn wapc_init() {
            $crate::__private::install_panic_hook();
            $( $crate::__private::register($op, |payload| $crate::__private::run(payload, $f)); )+
        }
    };
}

#[doc(hidden)]
pub mod __private {
    use crate::{IntoResponse, Request, Result};

    pub use wapc_guest::register_function as register;

    #[link(wasm_import_module = "wapc")]
    unsafe extern "C" {
        fn __guest_error(ptr: *const u8, len: usize);
    }

    /// Without this, a panic in a guest built for `wasm32-unknown-unknown`
    /// is a bare `unreachable` trap: report the message first, so the host
    /// can say what happened.
    pub fn install_panic_hook() {
        std::panic::set_hook(Box::new(|info| {
            let msg = format!("panicked: {info}");
            // SAFETY: a waPC import taking a valid pointer and length.
            unsafe { __guest_error(msg.as_ptr(), msg.len()) }
        }));
    }

    pub fn run<R: IntoResponse>(payload: &[u8], f: fn(Request) -> Result<R>) -> wapc_guest::CallResult {
        match f(Request::new(payload.to_vec())) {
            Ok(r) => Ok(r.into_response().send()?),
            Err(e) => {
                if let Some(status) = e.status_code() {
                    // Best effort: the error itself must still be returned.
                    let _ = crate::host::call_msgpack::<_, ()>("", "response", "set_status", &status);
                }
                Err(Box::new(e))
            }
        }
    }
}
