//! waPC links: host calls whose namespace names another function of the
//! app, as waSCC actors called each other.
//!
//! A function granted `links = ["pricing"]` (or `{ "sample:ns" = "pricing" }`)
//! reaches `pricing` with `__host_call(binding, "pricing", op, payload)`: the
//! host runs `pricing`'s `op` in a fresh instance, with `pricing`'s own
//! grants and limits, inside what is left of the caller's deadline, and
//! hands back its output, or its error through `__host_error`. The callee
//! can read who called it, with which binding, namespace and operation,
//! through `request.link`, so one function can answer a whole foreign
//! namespace. Calls nest up to [`MAX_LINK_DEPTH`] deep.
//!
//! The capability layer only checks the grant and the depth: running a
//! function is the runtime's job, reached through [`LinkTarget`].

use crate::{HostCallError, Invocation};
use bytes::Bytes;
use std::sync::Arc;
use std::time::Instant;

/// How deep link calls may nest (a trigger's function calling a linked
/// function is depth 1).
pub const MAX_LINK_DEPTH: u8 = 8;

/// One link call, as the callee sees it.
#[derive(Debug, Clone)]
pub struct LinkCall {
    /// The function that made the call.
    pub caller: Arc<str>,
    pub binding: String,
    pub namespace: String,
    pub operation: String,
    /// 1 for a call made by a function a trigger ran, 2 for one made by
    /// its callee, and so on.
    pub depth: u8,
    /// The call that ran the caller, if it was itself linked.
    pub parent: Option<Arc<LinkCall>>,
}

impl LinkCall {
    /// `a → b → c`: the functions from the first caller to this callee.
    fn chain(&self, callee: &str) -> String {
        let mut names = vec![callee.to_string(), self.caller.to_string()];
        let mut at = self.parent.clone();
        while let Some(call) = at {
            names.push(call.caller.to_string());
            at = call.parent.clone();
        }
        names.reverse();
        names.join(" → ")
    }
}

/// Runs a linked function: implemented by the runtime, which knows the
/// app's functions.
#[async_trait::async_trait]
pub trait LinkTarget: Send + Sync {
    /// Runs `function` for `call`, made from the invocation `from`, with
    /// `payload`, finishing by `until`. Returns its output, or a host error
    /// that says why it failed.
    async fn run_linked(
        &self,
        function: &str,
        call: Arc<LinkCall>,
        from: &Invocation,
        payload: Bytes,
        until: Option<Instant>,
    ) -> Result<Vec<u8>, HostCallError>;
}

/// A host call on a linked namespace.
pub(crate) async fn call(
    inv: &Invocation,
    target: &str,
    binding: &str,
    namespace: &str,
    op: &str,
    payload: &[u8],
) -> Result<Vec<u8>, HostCallError> {
    let Some(runner) = inv.linker.clone() else {
        return Err(HostCallError::Failed(format!(
            "namespace \"{namespace}\" links to function \"{target}\", but linked calls are not available where \"{}\" runs",
            inv.function
        )));
    };
    let depth = inv.link.as_ref().map_or(0, |l| l.depth) + 1;
    let call = Arc::new(LinkCall {
        caller: inv.function.clone(),
        binding: binding.to_string(),
        namespace: namespace.to_string(),
        operation: op.to_string(),
        depth,
        parent: inv.link.clone(),
    });
    if depth > MAX_LINK_DEPTH {
        return Err(HostCallError::Failed(format!(
            "linked calls may nest at most {MAX_LINK_DEPTH} deep: {}",
            call.chain(target)
        )));
    }
    runner
        .run_linked(target, call, inv, Bytes::copy_from_slice(payload), inv.deadline)
        .await
}
