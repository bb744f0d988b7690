//! The list of capabilities, and the app-wide [`Services`] built from it.
//!
//! Each line below registers one capability folder (see `capability.rs`);
//! everything about a capability lives in its folder. What is not a
//! capability stays here: the invocation's own namespaces (`request`,
//! `response`, `state`, needing no grant) and waPC links to other
//! functions.

use crate::capability::{BuildContext, HostCapability, capabilities};
use crate::files::StaticFiles;
use crate::msg::Broker;
use crate::vars::Variables;
use crate::{HostCallError, Invocation, files, http, kv, log, msg, namespaces, sql, vars};
use atoll_manifest::{Capability, Function, Manifest, ManifestError, ManifestErrors, RuntimeConfigFile};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

capabilities! {
    /// The structured log.
    log: log::Log,
    /// Granted key-value stores, by name.
    kv: kv::Kv,
    /// Outbound HTTP to the allowed hosts.
    http: http::Http,
    /// Variables, and the secret ones it may read.
    vars: vars::Vars,
    /// The app's static files.
    files: files::Files,
    /// The broker, and the topics it may publish on.
    msg: msg::Msg,
    /// Granted named queries.
    sql: sql::Sql,
}

/// Every namespace a guest can call, for messages and docs.
pub const NAMESPACES: &[&str] = &{
    const N: usize = namespaces::BUILTIN.len() + CAPABILITY_NAMESPACES.len();
    let mut all = [""; N];
    let mut i = 0;
    while i < N {
        all[i] = if i < namespaces::BUILTIN.len() {
            namespaces::BUILTIN[i]
        } else {
            CAPABILITY_NAMESPACES[i - namespaces::BUILTIN.len()]
        };
        i += 1;
    }
    all
};

impl Grants {
    /// Capabilities only, with no resources behind them (tests, tools).
    pub fn with_capabilities(caps: impl IntoIterator<Item = Capability>) -> Grants {
        Grants {
            capabilities: caps.into_iter().collect(),
            ..Grants::default()
        }
    }

    pub fn allows(&self, cap: Capability) -> bool {
        self.capabilities.contains(&cap)
    }
}

/// The app's own files that capabilities read at load.
#[derive(Default)]
pub struct AppFiles {
    /// `static/`, if the app has one.
    pub static_files: Option<Arc<dyn StaticFiles>>,
    /// `migrations/`, by path relative to it, with their text.
    pub migrations: BTreeMap<String, String>,
}

/// The backends of one app, built once at load from the manifest and the
/// runtime configuration, and the per-function [`Grants`] cut from them.
pub struct Services {
    backends: Backends,
}

impl Services {
    /// Builds every backend the app's functions were granted. `data_dir`
    /// holds embedded stores; `env` reads environment variables; `app`
    /// holds the app's own files that backends read at load.
    pub async fn build(
        manifest: &Manifest,
        runtime: RuntimeConfigFile,
        data_dir: &Path,
        env: impl Fn(&str) -> Option<String>,
        app: AppFiles,
    ) -> Result<Services, ManifestErrors> {
        let mut errors: Vec<ManifestError> = Vec::new();
        let vars = match Variables::resolve(manifest, &runtime.variables, runtime.scope.as_ref(), env) {
            Ok(v) => Arc::new(v),
            Err(e) => {
                errors.extend(e);
                Arc::new(Variables::default())
            }
        };
        let ctx = BuildContext {
            manifest,
            runtime: &runtime,
            data_dir,
            vars: &vars,
            files: app.static_files.as_ref(),
            migrations: &app.migrations,
        };
        let backends = Backends::build(&ctx, &mut errors).await;
        match backends {
            Some(backends) if errors.is_empty() => Ok(Services { backends }),
            _ => Err(ManifestErrors(errors)),
        }
    }

    /// What `f` may touch. Fails only if its HTTP client cannot be built.
    pub fn grants_for(&self, f: &Function) -> Result<Grants, String> {
        self.backends.grants_for(f)
    }

    /// The broker subscriptions are served from and functions publish to.
    pub fn broker(&self) -> Arc<dyn Broker> {
        self.backends.msg.broker()
    }
}

/// Routes one host call: the invocation's own namespaces, then the
/// capabilities (grant checked first), then links to other functions.
pub(crate) async fn dispatch(
    inv: &mut Invocation,
    binding: &str,
    namespace: &str,
    op: &str,
    payload: &[u8],
) -> Result<Vec<u8>, HostCallError> {
    if let Some(result) = namespaces::call(inv, namespace, op, payload) {
        return result;
    }
    let inv: &Invocation = inv;
    if let Some(result) = dispatch_capability(inv, binding, namespace, op, payload).await {
        return result;
    }
    match inv.grants.links.get(namespace).cloned() {
        Some(target) => crate::links::call(inv, &target, binding, namespace, op, payload).await,
        None => Err(HostCallError::UnknownNamespace(namespace.to_string())),
    }
}
