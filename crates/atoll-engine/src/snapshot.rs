//! Pre-initialisation: run a guest's init code once at load and bake the
//! resulting memory and globals into a new module (Wizer).
//!
//! Measured on Wasmtime 48 with a small waPC guest, snapshotting `wapc_init`
//! takes the per-request init cost to zero and, with resident pages, halves
//! the whole invocation. The catch is that init runs once, not per
//! instance: whatever it observed (the clock, random bytes) is frozen into
//! the snapshot. Guests whose init cannot be snapshotted (it calls the host,
//! uses reference types or imports memory) fall back to a per-instance init.

use wasmtime::{Instance, Module, Store};
use wasmtime_wizer::{WasmtimeWizer, Wizer};

/// Instruments `wasm`, lets `instantiate` create an instance of it in
/// `store` and run whatever init functions the ABI calls, then snapshots the
/// instance into a new module. `init_func` is stripped from the result's
/// exports so it cannot run twice.
pub async fn snapshot<T: Send + 'static>(
    store: &mut Store<T>,
    wasm: &[u8],
    init_func: &str,
    instantiate: impl AsyncFnOnce(&mut Store<T>, &Module) -> wasmtime::Result<Instance>,
) -> wasmtime::Result<Vec<u8>> {
    let mut wizer = Wizer::new();
    wizer.init_func(init_func);
    let (cx, instrumented) = wizer.instrument(wasm)?;
    let module = Module::new(store.engine(), &instrumented)?;
    let instance = instantiate(store, &module).await?;
    wizer.snapshot(&cx, &mut WasmtimeWizer { store, instance }).await
}
