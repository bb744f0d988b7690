//! What one waPC instance carries in its `Store`.

use crate::stdio::OutputTail;
use atoll_caps::Invocation;
use atoll_engine::InstanceLimiter;
use bytes::Bytes;
use std::time::Instant;
use wasmtime::Memory;
use wasmtime_wasi::p1::WasiP1Ctx;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Pre-initialising at load: waPC imports are refused so that init code
    /// which needs the host is detected and run per instance instead.
    Snapshot,
    /// Running `_initialize` / `_start` / `wapc_init` on this instance.
    Init,
    Call,
}

pub struct WapcState {
    pub(crate) inv: Invocation,
    pub(crate) op: Bytes,
    pub(crate) msg: Bytes,
    pub(crate) memory: Option<Memory>,
    pub(crate) guest_response: Option<Vec<u8>>,
    pub(crate) guest_error: Option<String>,
    pub(crate) host_response: Option<Vec<u8>>,
    pub(crate) host_error: Option<String>,
    pub(crate) limiter: InstanceLimiter,
    /// Created on the first WASI call: most waPC guests never make one.
    pub(crate) wasi: Option<WasiP1Ctx>,
    /// Guest stdout and stderr, created with the WASI context.
    pub(crate) stdio: Option<(OutputTail, OutputTail)>,
    pub(crate) deadline: Instant,
    pub(crate) max_output: usize,
    pub(crate) phase: Phase,
    /// The import a snapshot attempt tried to call, if any.
    pub(crate) blocked_import: Option<&'static str>,
}

impl WapcState {
    pub(crate) fn new(inv: Invocation, op: Bytes, msg: Bytes, memory_limit: u64, max_output: usize) -> Self {
        WapcState {
            inv,
            op,
            msg,
            memory: None,
            guest_response: None,
            guest_error: None,
            host_response: None,
            host_error: None,
            limiter: InstanceLimiter::new(memory_limit),
            wasi: None,
            stdio: None,
            deadline: Instant::now(),
            max_output,
            phase: Phase::Call,
            blocked_import: None,
        }
    }

    /// A sandbox with no files, environment, arguments or network: only
    /// clocks, randomness and the captured stdout/stderr.
    pub(crate) fn wasi(&mut self) -> &mut WasiP1Ctx {
        if self.wasi.is_none() {
            let (stdout, stderr) = (OutputTail::default(), OutputTail::default());
            self.wasi = Some(
                wasmtime_wasi::WasiCtxBuilder::new()
                    .stdout(stdout.clone())
                    .stderr(stderr.clone())
                    .build_p1(),
            );
            self.stdio = Some((stdout, stderr));
        }
        self.wasi.as_mut().expect("created above")
    }
}
