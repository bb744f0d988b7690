//! Pre-initialisation: run a guest's init code once at load and bake the
//! resulting memory and globals into a new module (Wizer).
//!
//! Measured on Wasmtime 48 with a small waPC guest, snapshotting `wapc_init`
//! takes the per-request init cost to zero and, with resident pages, halves
//! the whole invocation. The catch is that init runs once, not per
//! instance: whatever it observed (the clock, random bytes) is frozen into
//! the snapshot. Guests whose init cannot be snapshotted (it calls the host,
//! uses reference types or imports memory) fall back to a per-instance init.

use wasmtime::{Instance, Module, Store, Val};
use wasmtime_wizer::{InstanceState, SnapshotVal, ValType, Wizer};

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
    wizer.snapshot(&cx, &mut Initialised { store, instance }).await
}

/// The initialised instance Wizer reads the snapshot from. Written here
/// rather than taken from Wizer's `wasmtime` feature, which would build
/// Wasmtime with features Atoll does not use (threads, its own cache, GC
/// variants, WAVE, a WIT parser): minutes of every cold build.
struct Initialised<'a, T: 'static> {
    store: &'a mut Store<T>,
    instance: Instance,
}

impl<T: Send> InstanceState for Initialised<'_, T> {
    async fn global_get(&mut self, name: &str, _: ValType) -> SnapshotVal {
        // Wizer asks only for globals it found exported by the instrumented
        // module, so a missing one is a bug in the pairing, not bad input.
        let global = self
            .instance
            .get_global(&mut *self.store, name)
            .expect("Wizer names an exported global");
        match global.get(&mut *self.store) {
            Val::I32(x) => SnapshotVal::I32(x),
            Val::I64(x) => SnapshotVal::I64(x),
            Val::F32(x) => SnapshotVal::F32(x),
            Val::F64(x) => SnapshotVal::F64(x),
            Val::V128(x) => SnapshotVal::V128(x.as_u128()),
            other => panic!("Wizer cannot snapshot a global holding {other:?}"),
        }
    }

    async fn memory_contents(&mut self, name: &str, contents: impl FnOnce(&[u8]) + Send) {
        let memory = self
            .instance
            .get_memory(&mut *self.store, name)
            .expect("Wizer names an exported memory");
        contents(memory.data(&*self.store))
    }
}
