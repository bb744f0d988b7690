//! The WASI state interfaces, on the function's grants and the same
//! capability backends as waPC host calls: `wasi:keyvalue` (store,
//! atomics, batch; 0.2.0-draft and 0.2.0-draft2) on its `kv_stores`, `wasi:config` on its
//! variables, `wasi:logging` into the host log. Nothing here holds state
//! of its own; a component and a waPC function see one store.

mod config;
mod keyvalue;
mod logging;

use crate::state::ComponentState;
use wasmtime::component::{HasSelf, Linker};

pub use keyvalue::{Bucket, Cas};

#[allow(missing_docs, reason = "bindgen-generated code")]
mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "atoll:host/state",
        imports: { default: async | trappable },
        with: {
            // Both versions' buckets are one type, so are their errors.
            "wasi:keyvalue/store.bucket": super::Bucket,
            "wasi:keyvalue/atomics.cas": super::Cas,
        },
        trappable_error_type: {
            "wasi:keyvalue/store@0.2.0-draft.error" => super::keyvalue::KvFailure,
            "wasi:keyvalue/store@0.2.0-draft2.error" => super::keyvalue::KvFailure,
        },
    });
}

/// Adds the state interfaces to `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<ComponentState>) -> wasmtime::Result<()> {
    use bindings::wasi;
    wasi::keyvalue0_2_0_draft::store::add_to_linker::<_, HasSelf<ComponentState>>(linker, |s| s)?;
    wasi::keyvalue0_2_0_draft::atomics::add_to_linker::<_, HasSelf<ComponentState>>(linker, |s| s)?;
    wasi::keyvalue0_2_0_draft::batch::add_to_linker::<_, HasSelf<ComponentState>>(linker, |s| s)?;
    wasi::keyvalue0_2_0_draft2::store::add_to_linker::<_, HasSelf<ComponentState>>(linker, |s| s)?;
    wasi::keyvalue0_2_0_draft2::atomics::add_to_linker::<_, HasSelf<ComponentState>>(linker, |s| s)?;
    wasi::keyvalue0_2_0_draft2::batch::add_to_linker::<_, HasSelf<ComponentState>>(linker, |s| s)?;
    wasi::config0_2_0_draft::store::add_to_linker::<_, HasSelf<ComponentState>>(linker, |s| s)?;
    wasi::config0_2_0_draft::runtime::add_to_linker::<_, HasSelf<ComponentState>>(linker, |s| s)?;
    wasi::config0_2_0_draft_2024_09_27::store::add_to_linker::<_, HasSelf<ComponentState>>(linker, |s| s)?;
    wasi::config0_2_0_rc_1::store::add_to_linker::<_, HasSelf<ComponentState>>(linker, |s| s)?;
    wasi::logging::logging::add_to_linker::<_, HasSelf<ComponentState>>(linker, |s| s)?;
    Ok(())
}
