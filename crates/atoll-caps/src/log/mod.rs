//! `log`: the guest's lines in the host's structured log, tagged with the
//! function, the request id and the trace id.
//!
//! | operation | payload | result |
//! |---|---|---|
//! | `trace` `debug` `info` `warn` `error` | `str` (or raw UTF-8) | empty |

use crate::capability::{BuildContext, HostCapability};
use crate::wire::text;
use crate::{HostCallError, Invocation};
use atoll_manifest::{Capability, Function, ManifestError};

/// The log has no backend and nothing to cut per function: the grant is
/// the capability itself.
pub struct Log;

impl HostCapability for Log {
    const KIND: Capability = Capability::Log;
    type Grant = ();

    async fn build(_: &BuildContext<'_>) -> Result<Log, Vec<ManifestError>> {
        Ok(Log)
    }

    fn grant(&self, _: &Function) -> Result<(), String> {
        Ok(())
    }

    async fn call(inv: &Invocation, _: &(), _: &str, op: &str, payload: &[u8]) -> Result<Vec<u8>, HostCallError> {
        call(inv, op, payload)
    }
}

/// Longer lines are cut: a guest must not be able to flood the log.
const MAX_LINE: usize = 16 * 1024;
const OPS: &[&str] = &["trace", "debug", "info", "warn", "error"];

fn call(inv: &Invocation, op: &str, payload: &[u8]) -> Result<Vec<u8>, HostCallError> {
    let msg = text(payload);
    let msg = clip(&msg);
    let (f, id) = (&*inv.function, &*inv.request_id);
    let trace_id = inv
        .request
        .trace
        .as_ref()
        .map(|t| tracing::field::display(t.trace_id()));
    match op {
        "trace" => tracing::trace!(target: "atoll::guest", function = f, request_id = id, trace_id, "{msg}"),
        "debug" => tracing::debug!(target: "atoll::guest", function = f, request_id = id, trace_id, "{msg}"),
        "info" => tracing::info!(target: "atoll::guest", function = f, request_id = id, trace_id, "{msg}"),
        "warn" => tracing::warn!(target: "atoll::guest", function = f, request_id = id, trace_id, "{msg}"),
        "error" => tracing::error!(target: "atoll::guest", function = f, request_id = id, trace_id, "{msg}"),
        _ => return Err(HostCallError::unknown_op("log", op, OPS)),
    }
    Ok(Vec::new())
}

pub(crate) fn console(inv: &Invocation, message: &str) -> bool {
    if !inv.grants.allows(Capability::Log) {
        return false;
    }
    let msg = clip(message);
    let trace_id = inv
        .request
        .trace
        .as_ref()
        .map(|t| tracing::field::display(t.trace_id()));
    tracing::info!(target: "atoll::guest", function = &*inv.function, request_id = &*inv.request_id, trace_id, "{msg}");
    true
}

fn clip(msg: &str) -> &str {
    if msg.len() <= MAX_LINE {
        return msg;
    }
    let mut end = MAX_LINE;
    while !msg.is_char_boundary(end) {
        end -= 1;
    }
    &msg[..end]
}
