//! `vars`: the app's variables, resolved once at load.
//!
//! A value comes from, in order: the environment (`ATOLL_APP_<APP>_VAR_<NAME>`,
//! then `ATOLL_VAR_<NAME>`), the runtime configuration's `[apps.APP.variables]`
//! then `[variables]`, the manifest's `default`. When the server hosts several
//! apps, the unscoped ones (`ATOLL_VAR_*`, `[variables]`) are refused at start
//! ([`check_env`]), so a value reaches only the app its operator named. A
//! required variable without a value stops the load. Secret values are kept
//! behind a type whose `Debug` and `Display` print `<secret>`, are never
//! logged, and reach a function only if its `secrets` lists them.
//!
//! | operation | payload | result |
//! |---|---|---|
//! | `get` | `str` name (raw UTF-8 accepted) | `str`, or `nil` if the variable has no value |

use crate::capability::{BuildContext, HostCapability};
use crate::wire::{encode, text};
use crate::{HostCallError, Invocation};
use atoll_manifest::{AppScope, Capability, Function, Manifest, ManifestError, app_env_prefix};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

/// The app's variables, resolved before any capability is built.
pub struct Vars {
    vars: Arc<Variables>,
}

/// What one function may read: the variables, secret ones only if listed.
#[derive(Clone, Default)]
pub struct VarsGrant {
    pub vars: Option<Arc<Variables>>,
    /// Secret variables the function may read.
    pub secrets: BTreeSet<String>,
}

impl VarsGrant {
    /// The `(name, value)` pairs the function may read.
    pub fn readable(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().flat_map(|v| v.readable(&self.secrets))
    }
}

impl fmt::Debug for VarsGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VarsGrant")
            .field("vars", &self.vars.is_some())
            .field("secrets", &self.secrets)
            .finish()
    }
}

impl HostCapability for Vars {
    const KIND: Capability = Capability::Vars;
    type Grant = VarsGrant;

    async fn build(ctx: &BuildContext<'_>) -> Result<Vars, Vec<ManifestError>> {
        Ok(Vars { vars: ctx.vars.clone() })
    }

    fn grant(&self, f: &Function) -> Result<VarsGrant, String> {
        Ok(VarsGrant {
            vars: Some(self.vars.clone()),
            secrets: f.secrets.iter().cloned().collect(),
        })
    }

    async fn call(
        inv: &Invocation,
        grant: &VarsGrant,
        _: &str,
        op: &str,
        payload: &[u8],
    ) -> Result<Vec<u8>, HostCallError> {
        call(inv, grant, op, payload)
    }
}

/// A variable's value; secrets do not print.
#[derive(Clone, PartialEq, Eq)]
pub struct Value {
    text: String,
    pub secret: bool,
}

impl Value {
    pub fn expose(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.secret {
            f.write_str("<secret>")
        } else {
            write!(f, "{:?}", self.text)
        }
    }
}

#[derive(Debug, Default)]
pub struct Variables {
    /// Every declared variable; `None` when it has no value.
    values: BTreeMap<String, Option<Value>>,
}

impl Variables {
    /// Resolves every declared variable. `runtime` holds the values of the
    /// runtime configuration as the app sees them; `scope`, whose app this
    /// is; `env` reads the environment (a parameter so tests need not touch
    /// the real one).
    pub fn resolve(
        manifest: &Manifest,
        runtime: &BTreeMap<String, String>,
        scope: Option<&AppScope>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Variables, Vec<ManifestError>> {
        let mut values = BTreeMap::new();
        let mut errors = Vec::new();
        let unscoped = scope.is_none_or(|s| !s.several);
        for (name, var) in &manifest.variables {
            let value = scope
                .and_then(|s| env(&var.app_env_name(&s.app)))
                .or_else(|| unscoped.then(|| env(&var.env_name())).flatten())
                .or_else(|| runtime.get(name).cloned())
                .or_else(|| var.default.clone());
            if value.is_none() && var.required {
                let (env_name, table) = match scope {
                    Some(s) if s.several => (var.app_env_name(&s.app), format!("[apps.{}.variables]", s.app)),
                    _ => (var.env_name(), "[variables]".to_string()),
                };
                errors.push(manifest.source.error(
                    var.loc,
                    format!("variables.{name}"),
                    format!(
                        "variable \"{name}\" is required but has no value; set {env_name} in the environment or `{name} = \"...\"` under {table} in the runtime configuration"
                    ),
                ));
            }
            values.insert(
                name.clone(),
                value.map(|text| Value {
                    text,
                    secret: var.secret,
                }),
            );
        }
        for name in runtime.keys().filter(|n| !manifest.variables.contains_key(*n)) {
            tracing::warn!(variable = %name, "the runtime configuration sets a variable the app does not declare");
        }
        if errors.is_empty() {
            Ok(Variables { values })
        } else {
            Err(errors)
        }
    }

    /// `Some(None)`: declared without a value; `None`: not declared.
    pub fn get(&self, name: &str) -> Option<Option<&Value>> {
        self.values.get(name).map(Option::as_ref)
    }

    /// Every variable with a value that a function listing `secrets` may
    /// read: what the `get` operation would answer, all at once (a WAGI
    /// program gets them as its environment).
    pub fn readable<'a>(&'a self, secrets: &'a BTreeSet<String>) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.values.iter().filter_map(move |(name, value)| {
            let value = value.as_ref()?;
            (!value.secret || secrets.contains(name)).then_some((name.as_str(), value.expose()))
        })
    }
}

/// Checks the environment's variable names (`keys`) against the apps a
/// server hosts (`apps`, by name), before any app loads: with several apps,
/// an `ATOLL_VAR_*` is refused, as it would reach every app declaring that
/// variable; an `ATOLL_APP_<APP>_VAR_*` that more than one app's prefix
/// matches (names alike once upper-cased, or one app's name running into
/// another's variable) is refused, as it is not clear whose it is. The
/// answer is a warning for each `ATOLL_APP_*_VAR_*` no app takes.
pub fn check_env<'a>(apps: &[&str], several: bool, keys: impl Iterator<Item = &'a str>) -> Result<Vec<String>, String> {
    let prefixes: Vec<(String, &str)> = apps.iter().map(|a| (app_env_prefix(a), *a)).collect();
    let mut warnings = Vec::new();
    for key in keys {
        if several && let Some(name) = key.strip_prefix("ATOLL_VAR_") {
            return Err(format!(
                "{key} is set, but this server hosts several apps and would give it to every app declaring `{}`; \
                 give it to one app as ATOLL_APP_<APP>_VAR_{name} (the app's name upper-cased, - as _)",
                name.to_ascii_lowercase()
            ));
        }
        if !key.starts_with("ATOLL_APP_") || !key.contains("_VAR_") {
            continue;
        }
        let owners: Vec<&str> = prefixes
            .iter()
            .filter(|(p, _)| key.starts_with(p.as_str()) && key.len() > p.len())
            .map(|(_, a)| *a)
            .collect();
        match owners.as_slice() {
            [] => warnings.push(format!(
                "{key} names no app served; it applies if an app of that name is deployed"
            )),
            [_] => {}
            several => {
                return Err(format!(
                    "{key} could be meant for any of the apps {}: rename one of them, as this environment variable cannot say whose it is",
                    several
                        .iter()
                        .map(|a| format!("\"{a}\""))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
    }
    Ok(warnings)
}

fn call(inv: &Invocation, grant: &VarsGrant, op: &str, payload: &[u8]) -> Result<Vec<u8>, HostCallError> {
    if op != "get" {
        return Err(HostCallError::unknown_op("vars", op, &["get"]));
    }
    let name = text(payload);
    let Some(vars) = &grant.vars else {
        return Err(HostCallError::Failed(
            "variables are not configured for this function".into(),
        ));
    };
    match vars.get(&name) {
        None => Err(HostCallError::Failed(format!(
            "unknown variable \"{name}\"; declare it under [variables] in atoll.toml"
        ))),
        Some(Some(v)) if v.secret && !grant.secrets.contains(&name) => Err(HostCallError::Failed(format!(
            "variable \"{name}\" is secret; list it in the `secrets` of function \"{}\" to read it",
            inv.function
        ))),
        Some(v) => Ok(encode(&v.map(Value::expose))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn manifest() -> Manifest {
        Manifest::parse(
            "[app]\nname = \"v\"\n[variables]\na = { default = \"from-default\" }\nb = { default = \"from-default\" }\nc = { default = \"from-default\" }\ntoken = { secret = true }\n",
            Path::new("atoll.toml"),
        )
        .unwrap()
    }

    #[test]
    fn the_environment_wins_then_the_runtime_file_then_the_default() {
        let runtime = BTreeMap::from([
            ("a".to_string(), "from-file".to_string()),
            ("b".to_string(), "from-file".to_string()),
        ]);
        let env = |k: &str| (k == "ATOLL_VAR_A").then(|| "from-env".to_string());
        let vars = Variables::resolve(&manifest(), &runtime, None, env).unwrap();
        assert_eq!(vars.get("a").flatten().unwrap().expose(), "from-env");
        assert_eq!(vars.get("b").flatten().unwrap().expose(), "from-file");
        assert_eq!(vars.get("c").flatten().unwrap().expose(), "from-default");
        assert_eq!(vars.get("token"), Some(None));
        assert_eq!(vars.get("undeclared"), None);
    }

    #[test]
    fn readable_lists_secrets_only_where_granted() {
        let env = |k: &str| (k == "ATOLL_VAR_TOKEN").then(|| "hunter2".to_string());
        let vars = Variables::resolve(&manifest(), &BTreeMap::new(), None, env).unwrap();
        let none = std::collections::BTreeSet::new();
        let seen: Vec<_> = vars.readable(&none).map(|(n, _)| n).collect();
        assert_eq!(seen, ["a", "b", "c"]);
        let granted = std::collections::BTreeSet::from(["token".to_string()]);
        assert!(vars.readable(&granted).any(|(n, v)| n == "token" && v == "hunter2"));
    }

    #[test]
    fn secrets_do_not_print() {
        let env = |k: &str| (k == "ATOLL_VAR_TOKEN").then(|| "hunter2".to_string());
        let vars = Variables::resolve(&manifest(), &BTreeMap::new(), None, env).unwrap();
        let shown = format!("{vars:?}");
        assert!(!shown.contains("hunter2") && shown.contains("<secret>"), "{shown}");
    }

    #[test]
    fn an_apps_own_environment_wins_and_unscoped_values_stay_out_with_several_apps() {
        let env = |k: &str| match k {
            "ATOLL_APP_MY_SHOP_VAR_A" => Some("mine".to_string()),
            "ATOLL_VAR_A" | "ATOLL_VAR_B" => Some("everyone's".to_string()),
            _ => None,
        };
        let one = AppScope {
            app: "my-shop".into(),
            several: false,
        };
        let vars = Variables::resolve(&manifest(), &BTreeMap::new(), Some(&one), env).unwrap();
        assert_eq!(vars.get("a").flatten().unwrap().expose(), "mine");
        assert_eq!(
            vars.get("b").flatten().unwrap().expose(),
            "everyone's",
            "one app: ATOLL_VAR_ is its own"
        );
        let several = AppScope { several: true, ..one };
        let vars = Variables::resolve(&manifest(), &BTreeMap::new(), Some(&several), env).unwrap();
        assert_eq!(vars.get("a").flatten().unwrap().expose(), "mine");
        assert_eq!(vars.get("b").flatten().unwrap().expose(), "from-default");
        let required = Manifest::parse(
            "[app]\nname = \"v\"\n[variables]\nkey = { required = true }\n",
            Path::new("atoll.toml"),
        )
        .unwrap();
        let err = Variables::resolve(&required, &BTreeMap::new(), Some(&several), env).unwrap_err();
        let shown = err[0].to_string();
        assert!(
            shown.contains("set ATOLL_APP_MY_SHOP_VAR_KEY in the environment")
                && shown.contains("under [apps.my-shop.variables]"),
            "{shown}"
        );
    }

    #[test]
    fn the_environment_is_checked_against_the_apps_served() {
        assert_eq!(check_env(&["a"], false, ["ATOLL_VAR_X"].into_iter()), Ok(vec![]));
        let err = check_env(&["a", "b"], true, ["PATH", "ATOLL_VAR_API_KEY"].into_iter()).unwrap_err();
        assert!(
            err.contains("ATOLL_VAR_API_KEY is set") && err.contains("ATOLL_APP_<APP>_VAR_API_KEY"),
            "{err}"
        );
        assert_eq!(
            check_env(
                &["a", "b-c"],
                true,
                ["ATOLL_APP_B_C_VAR_X", "ATOLL_APP_A_VAR_Y"].into_iter()
            ),
            Ok(vec![])
        );
        let warned = check_env(&["a"], true, ["ATOLL_APP_Z_VAR_X"].into_iter()).unwrap();
        assert!(
            warned[0].contains("ATOLL_APP_Z_VAR_X names no app served"),
            "{warned:?}"
        );
        // "a" with `b_var_c`, or "a_var_b" with `c`: whose is it?
        let err = check_env(&["a", "a_var_b"], true, ["ATOLL_APP_A_VAR_B_VAR_C"].into_iter()).unwrap_err();
        assert!(err.contains("\"a\", \"a_var_b\""), "{err}");
        let err = check_env(&["Shop", "shop"], true, ["ATOLL_APP_SHOP_VAR_K"].into_iter()).unwrap_err();
        assert!(err.contains("any of the apps"), "{err}");
    }
}
