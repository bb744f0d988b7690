//! One module per namespace. Adding a capability means adding a module here
//! and a line in [`dispatch`].

pub(crate) mod log;
mod request;
mod response;
mod state;

use crate::{HostCallError, Invocation};
use atoll_manifest::Capability;

/// Every namespace a guest can call, for messages and docs.
pub const NAMESPACES: &[&str] = &[
    "log", "request", "response", "state", "kv", "http", "vars", "files", "msg",
];

pub(crate) async fn dispatch(
    inv: &mut Invocation,
    binding: &str,
    namespace: &str,
    op: &str,
    payload: &[u8],
) -> Result<Vec<u8>, HostCallError> {
    match namespace {
        "request" => request::call(inv, op, payload),
        "response" => response::call(inv, op, payload),
        "state" => state::call(inv, op, payload),
        "log" => {
            require(inv, Capability::Log, namespace)?;
            log::call(inv, op, payload)
        }
        "kv" => {
            require(inv, Capability::Kv, namespace)?;
            crate::kv::call(inv, binding, op, payload).await
        }
        "http" => {
            require(inv, Capability::Http, namespace)?;
            crate::http::call(inv, op, payload).await
        }
        "vars" => {
            require(inv, Capability::Vars, namespace)?;
            crate::vars::call(inv, op, payload)
        }
        "files" => {
            require(inv, Capability::Files, namespace)?;
            crate::files::call(inv, op, payload).await
        }
        "msg" => {
            require(inv, Capability::Msg, namespace)?;
            crate::msg::call(inv, op, payload).await
        }
        other => match inv.grants.links.get(other).cloned() {
            Some(target) => crate::links::call(inv, &target, binding, other, op, payload).await,
            None => Err(HostCallError::UnknownNamespace(other.to_string())),
        },
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

pub(crate) fn unknown_op(namespace: &str, op: &str, known: &[&str]) -> HostCallError {
    HostCallError::UnknownOperation {
        namespace: namespace.to_string(),
        operation: op.to_string(),
        known: known.join(", "),
    }
}
