//! `wasi:config`: the app's variables, as the `vars` namespace gives them
//! to waPC functions: only with the `vars` grant, and secret ones only
//! where the function lists them in `secrets`.
//!
//! Components in the wild import this one interface under four names
//! (see `wit/world.wit`); each is the same two functions on the same
//! variables.

use super::bindings::wasi;
use crate::state::ComponentState;
use atoll_manifest::Capability;

impl ComponentState {
    fn variable(&self, key: &str) -> Option<String> {
        let grants = &self.inv.grants;
        if !grants.allows(Capability::Vars) {
            return None;
        }
        grants
            .vars
            .readable()
            .find(|(n, _)| *n == key)
            .map(|(_, v)| v.to_string())
    }

    fn variables(&self) -> Vec<(String, String)> {
        let grants = &self.inv.grants;
        if !grants.allows(Capability::Vars) {
            return Vec::new();
        }
        grants
            .vars
            .readable()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }
}

/// One `Host` impl per name of the interface; nothing here can fail, so
/// the error type only appears in the signatures.
macro_rules! config_host {
    ($($interface:path => $error:ident),* $(,)?) => {$(
        impl $interface for ComponentState {
            async fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<String>, $error>> {
                Ok(Ok(self.variable(&key)))
            }

            async fn get_all(&mut self) -> wasmtime::Result<Result<Vec<(String, String)>, $error>> {
                Ok(Ok(self.variables()))
            }
        }
    )*};
}

use wasi::config0_2_0_draft::runtime::ConfigError;
use wasi::config0_2_0_draft::store::Error as DraftError;
use wasi::config0_2_0_draft_2024_09_27::store::Error as DatedError;
use wasi::config0_2_0_rc_1::store::Error as RcError;

config_host! {
    wasi::config0_2_0_draft::store::Host => DraftError,
    wasi::config0_2_0_draft::runtime::Host => ConfigError,
    wasi::config0_2_0_draft_2024_09_27::store::Host => DatedError,
    wasi::config0_2_0_rc_1::store::Host => RcError,
}
