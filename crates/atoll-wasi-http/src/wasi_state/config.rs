//! `wasi:config/store`: the app's variables, as the `vars` namespace
//! gives them to waPC functions: only with the `vars` grant, and secret
//! ones only where the function lists them in `secrets`.

use super::bindings::wasi::config::store::{Error, Host};
use crate::state::ComponentState;
use atoll_manifest::Capability;

impl ComponentState {
    fn readable(&self) -> Vec<(String, String)> {
        let grants = &self.inv.grants;
        match (&grants.vars, grants.allows(Capability::Vars)) {
            (Some(vars), true) => vars
                .readable(&grants.secrets)
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            _ => Vec::new(),
        }
    }
}

impl Host for ComponentState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<String>, Error>> {
        Ok(Ok(self.readable().into_iter().find(|(n, _)| *n == key).map(|(_, v)| v)))
    }

    async fn get_all(&mut self) -> wasmtime::Result<Result<Vec<(String, String)>, Error>> {
        Ok(Ok(self.readable()))
    }
}
