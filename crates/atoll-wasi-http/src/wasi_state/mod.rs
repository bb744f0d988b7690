//! The WASI state interfaces, on the function's grants and the same
//! capability backends as waPC host calls: `wasi:keyvalue` (store,
//! atomics, batch) on its `kv_stores`, `wasi:config` on its
//! variables, `wasi:logging` into the host log. Nothing here holds state
//! of its own; a component and a waPC function see one store.

mod config;
mod keyvalue;
mod logging;

use crate::state::ComponentState;
use wasmtime::component::{HasSelf, Linker};

pub use keyvalue::Bucket;

#[allow(missing_docs, reason = "bindgen-generated code")]
mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "atoll:host/state",
        imports: { default: async | trappable },
        with: {
            "wasi:keyvalue/store.bucket": super::Bucket,
        },
        trappable_error_type: {
            "wasi:keyvalue/store.error" => super::keyvalue::KvFailure,
        },
    });
}

/// Adds the state interfaces to `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<ComponentState>) -> wasmtime::Result<()> {
    use bindings::wasi;
    wasi::keyvalue::store::add_to_linker::<_, HasSelf<ComponentState>>(linker, |s| s)?;
    wasi::keyvalue::atomics::add_to_linker::<_, HasSelf<ComponentState>>(linker, |s| s)?;
    wasi::keyvalue::batch::add_to_linker::<_, HasSelf<ComponentState>>(linker, |s| s)?;
    wasi::config0_2_0_draft::store::add_to_linker::<_, HasSelf<ComponentState>>(linker, |s| s)?;
    wasi::config0_2_0_draft::runtime::add_to_linker::<_, HasSelf<ComponentState>>(linker, |s| s)?;
    wasi::config0_2_0_draft_2024_09_27::store::add_to_linker::<_, HasSelf<ComponentState>>(linker, |s| s)?;
    wasi::config0_2_0_rc_1::store::add_to_linker::<_, HasSelf<ComponentState>>(linker, |s| s)?;
    wasi::logging::logging::add_to_linker::<_, HasSelf<ComponentState>>(linker, |s| s)?;
    Ok(())
}
