//! `wasi:logging/logging`: the component's lines in the host log, tagged
//! with the function and request id like a waPC function's `log` calls,
//! and only with the `log` grant (without it they are dropped).

use super::bindings::wasi::logging::logging::{Host, Level};
use crate::state::ComponentState;
use atoll_manifest::Capability;

impl Host for ComponentState {
    async fn log(&mut self, level: Level, context: String, message: String) -> wasmtime::Result<()> {
        let inv = &mut self.inv;
        if !inv.grants.allows(Capability::Log) {
            return Ok(());
        }
        let op = match level {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error | Level::Critical => "error",
        };
        let line = if context.is_empty() {
            message
        } else {
            format!("[{context}] {message}")
        };
        // Through the `log` namespace, so both ABIs log through one place
        // with one line-length limit.
        let _ = inv.host_call("", "log", op, line.as_bytes()).await;
        Ok(())
    }
}
