//! The contract every capability meets, and the macro that registers them.
//!
//! A capability is one module folder (`kv/`, `http/`, `sql/`...) holding
//! everything about it: the trait its backends implement with the shared
//! behaviour written beside it, its guest operations (`host.rs`), the slice
//! of it one function is granted (`grant.rs`), its backends, and how they
//! are built from the manifest and the runtime configuration. The folder
//! ties these together by implementing [`HostCapability`], and one line in
//! `services.rs` registers it: from that line the macro below derives the
//! app's backends, the field of [`Grants`](crate::Grants) that holds the
//! function's slice, the grant check and the dispatch of its namespace.

use crate::files::StaticFiles;
use crate::vars::Variables;
use crate::{HostCallError, Invocation};
use atoll_manifest::{Capability, Function, Manifest, ManifestError, RuntimeConfigFile};
use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;

/// What a capability's backends are built from, once per app load.
pub struct BuildContext<'a> {
    pub manifest: &'a Manifest,
    pub runtime: &'a RuntimeConfigFile,
    /// Where embedded stores keep their files.
    pub data_dir: &'a Path,
    /// The app's variables, resolved before any capability is built: the
    /// host's own configuration (outbound auth headers) renders from them.
    pub vars: &'a Arc<Variables>,
    /// The app's static files, if it has any.
    pub files: Option<&'a Arc<dyn StaticFiles>>,
    /// The app's `migrations/` files, by path relative to it, with their text.
    pub migrations: &'a BTreeMap<String, String>,
}

/// One capability: its backends for one app (`Self`), what one function
/// is granted of it, and the operations a guest calls on its namespace.
pub trait HostCapability: Sized + Send + Sync + 'static {
    /// The manifest's name for it, which is also its namespace.
    const KIND: Capability;
    /// One function's slice: only the resources its manifest entry lists.
    /// `Default` is what a function without the capability holds: nothing.
    type Grant: Clone + Default + std::fmt::Debug + Send + Sync;

    /// Builds the backends every function of the app may be granted, and
    /// does what they need once before serving (a schema migration, say).
    /// Errors name the manifest's or the runtime configuration's line.
    fn build(ctx: &BuildContext<'_>) -> impl Future<Output = Result<Self, Vec<ManifestError>>> + Send;

    /// Cuts `f`'s slice; called only when `f` is granted [`Self::KIND`].
    fn grant(&self, f: &Function) -> Result<Self::Grant, String>;

    /// One guest operation on the namespace, by a function granted it.
    fn call(
        inv: &Invocation,
        grant: &Self::Grant,
        binding: &str,
        op: &str,
        payload: &[u8],
    ) -> impl Future<Output = Result<Vec<u8>, HostCallError>> + Send;
}

/// Registers capabilities: `field: Type` per line, where `Type` implements
/// [`HostCapability`] and `field` is its name (and namespace). Generates the
/// app's `Backends`, the public [`Grants`](crate::Grants), and
/// `dispatch_capability`, which checks the grant before any operation runs.
macro_rules! capabilities {
    ($($(#[$doc:meta])* $field:ident: $ty:ty),* $(,)?) => {
        /// Every capability's backends for one app.
        struct Backends {
            $($field: $ty,)*
        }

        impl Backends {
            async fn build(ctx: &BuildContext<'_>, errors: &mut Vec<ManifestError>) -> Option<Backends> {
                $(let $field = <$ty as HostCapability>::build(ctx).await.map_err(|e| errors.extend(e)).ok();)*
                Some(Backends { $($field: $field?,)* })
            }

            fn grants_for(&self, f: &Function) -> Result<Grants, String> {
                Ok(Grants {
                    capabilities: f.capabilities.clone(),
                    $($field: if f.capabilities.contains(&<$ty as HostCapability>::KIND) {
                        self.$field.grant(f)?
                    } else {
                        Default::default()
                    },)*
                    links: f
                        .links
                        .iter()
                        .map(|l| (l.namespace.clone(), Arc::from(l.function.as_str())))
                        .collect(),
                })
            }
        }

        /// What one function may touch: its granted capabilities, and each
        /// capability's slice of resources. A resource that was not granted
        /// is not here at all, so it cannot be reached by any path.
        #[derive(Clone, Default, Debug)]
        pub struct Grants {
            pub capabilities: BTreeSet<Capability>,
            $($(#[$doc])* pub $field: <$ty as HostCapability>::Grant,)*
            /// Namespaces that run another function of the app, and which.
            pub links: BTreeMap<String, Arc<str>>,
        }

        /// Runs `op` if `namespace` is a capability's, after the grant check.
        async fn dispatch_capability(
            inv: &Invocation,
            binding: &str,
            namespace: &str,
            op: &str,
            payload: &[u8],
        ) -> Option<Result<Vec<u8>, HostCallError>> {
            $(if namespace == stringify!($field) {
                if !inv.grants.allows(<$ty as HostCapability>::KIND) {
                    return Some(Err(HostCallError::not_granted(namespace, &inv.function)));
                }
                return Some(<$ty as HostCapability>::call(inv, &inv.grants.$field, binding, op, payload).await);
            })*
            None
        }

        /// The registered capabilities' namespaces, in registration order.
        const CAPABILITY_NAMESPACES: &[&str] = &[$(stringify!($field),)*];

        #[cfg(test)]
        #[test]
        fn each_field_is_named_after_its_capability() {
            $(assert_eq!(stringify!($field), <$ty as HostCapability>::KIND.name());)*
        }
    };
}

pub(crate) use capabilities;

/// A capability's own sections of the runtime configuration (`[kv.*]`,
/// `[sql.*]`), read from the file's text into `T`, which names only those
/// sections (the rest of the file is the manifest crate's to check). A
/// syntax or shape error names the file, line and key like every other.
pub(crate) fn runtime_sections<T: serde::de::DeserializeOwned + Default>(
    runtime: &RuntimeConfigFile,
) -> Result<(T, Option<&atoll_manifest::SourceText>), Vec<ManifestError>> {
    let Some(src) = &runtime.source else {
        return Ok((T::default(), None));
    };
    match toml::from_str(&src.text) {
        Ok(t) => Ok((t, Some(src))),
        Err(e) => {
            let loc = src.locate(e.span().unwrap_or(0..0));
            Err(vec![src.error(loc, "", e.message().trim())])
        }
    }
}

/// Each source of a capability's sections with its key prefix, and the file.
pub(crate) type ScopedSections<'a, T> = (Vec<(String, T)>, Option<&'a atoll_manifest::SourceText>);

/// A capability's sections of the runtime configuration as an app sees
/// them: the server-wide ones first, then that app's own under
/// `[apps.NAME]` (which override them), each with the start of the key its
/// errors name (`""` or `"apps.NAME."`). Every span is in the one file.
pub(crate) fn app_runtime_sections<T: serde::de::DeserializeOwned + Default>(
    runtime: &RuntimeConfigFile,
) -> Result<ScopedSections<'_, T>, Vec<ManifestError>> {
    #[derive(serde::Deserialize)]
    #[serde(bound = "T: serde::de::DeserializeOwned")]
    struct Scoped<T> {
        #[serde(default = "BTreeMap::new")]
        apps: BTreeMap<String, T>,
    }
    let (server, src) = runtime_sections::<T>(runtime)?;
    let mut sections = vec![(String::new(), server)];
    if let (Some(src), Some(scope)) = (src, &runtime.scope) {
        let mut scoped: Scoped<T> = toml::from_str(&src.text).map_err(|e| {
            let loc = src.locate(e.span().unwrap_or(0..0));
            vec![src.error(loc, "", e.message().trim())]
        })?;
        if let Some(own) = scoped.apps.remove(&scope.app) {
            sections.push((format!("apps.{}.", scope.app), own));
        }
    }
    Ok((sections, src))
}
