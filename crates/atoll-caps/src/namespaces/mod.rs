//! One module per namespace. Adding a capability means adding a module here
//! and a line in [`dispatch`].

pub(crate) mod log;
mod request;
mod response;

use crate::{HostCallError, Invocation};
use atoll_manifest::Capability;

/// Every namespace a guest can call, for messages and docs.
pub const NAMESPACES: &[&str] = &["log", "request", "response"];

pub(crate) async fn dispatch(
    inv: &mut Invocation,
    _binding: &str,
    namespace: &str,
    op: &str,
    payload: &[u8],
) -> Result<Vec<u8>, HostCallError> {
    match namespace {
        "request" => request::call(inv, op, payload),
        "response" => response::call(inv, op, payload),
        "log" => {
            require(inv, Capability::Log, namespace)?;
            log::call(inv, op, payload)
        }
        other => Err(HostCallError::UnknownNamespace(other.to_string())),
    }
}

fn require(inv: &Invocation, cap: Capability, namespace: &str) -> Result<(), HostCallError> {
    if inv.grants.allows(cap) {
        Ok(())
    } else {
        Err(HostCallError::NotGranted {
            namespace: namespace.to_string(),
            function: inv.function.to_string(),
        })
    }
}

fn unknown_op(namespace: &str, op: &str, known: &[&str]) -> HostCallError {
    HostCallError::UnknownOperation {
        namespace: namespace.to_string(),
        operation: op.to_string(),
        known: known.join(", "),
    }
}
