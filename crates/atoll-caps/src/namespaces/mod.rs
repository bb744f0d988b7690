//! The invocation's own namespaces: its input (`request`), its output
//! (`response`) and its pipeline's `state`. They need no grant: they expose
//! nothing the function was not already handed.

mod request;
mod response;
mod state;

use crate::{HostCallError, Invocation};

pub(crate) const BUILTIN: &[&str] = &["request", "response", "state"];

/// `None` when `namespace` is not one of these.
pub(crate) fn call(
    inv: &mut Invocation,
    namespace: &str,
    op: &str,
    payload: &[u8],
) -> Option<Result<Vec<u8>, HostCallError>> {
    Some(match namespace {
        "request" => request::call(inv, op, payload),
        "response" => response::call(inv, op, payload),
        "state" => state::call(inv, op, payload),
        _ => return None,
    })
}
