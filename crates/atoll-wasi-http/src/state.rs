//! What one component instance carries in its `Store`: its WASI context
//! (built per request from the grants), its resources, the outbound HTTP
//! hooks, its memory limiter and the invocation it serves.

use crate::outbound::Outbound;
use atoll_caps::Invocation;
use atoll_engine::InstanceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// The `T` of a component's `Store<T>`.
pub struct ComponentState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) http: WasiHttpCtx,
    pub(crate) outbound: Outbound,
    pub(crate) limiter: InstanceLimiter,
    /// The invocation this instance serves: its grants back the WASI state
    /// interfaces, its name and request id tag the log.
    pub(crate) inv: Invocation,
}

impl WasiView for ComponentState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for ComponentState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}
