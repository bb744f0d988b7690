//! `vars`: the app's variables, resolved once at load.
//!
//! A value comes from, in order: the environment (`ATOLL_VAR_<NAME>`), the
//! runtime configuration's `[variables]`, the manifest's `default`. A
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
use atoll_manifest::{Capability, Function, Manifest, ManifestError};
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
    /// Resolves every declared variable. `env` reads the environment (a
    /// parameter so tests need not touch the real one).
    pub fn resolve(
        manifest: &Manifest,
        runtime: &BTreeMap<String, String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Variables, Vec<ManifestError>> {
        let mut values = BTreeMap::new();
        let mut errors = Vec::new();
        for (name, var) in &manifest.variables {
            let value = env(&var.env_name())
                .or_else(|| runtime.get(name).cloned())
                .or_else(|| var.default.clone());
            if value.is_none() && var.required {
                errors.push(manifest.source.error(
                    var.loc,
                    format!("variables.{name}"),
                    format!(
                        "variable \"{name}\" is required but has no value; set {} in the environment or `{name} = \"...\"` under [variables] in the runtime configuration",
                        var.env_name()
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
        let vars = Variables::resolve(&manifest(), &runtime, env).unwrap();
        assert_eq!(vars.get("a").flatten().unwrap().expose(), "from-env");
        assert_eq!(vars.get("b").flatten().unwrap().expose(), "from-file");
        assert_eq!(vars.get("c").flatten().unwrap().expose(), "from-default");
        assert_eq!(vars.get("token"), Some(None));
        assert_eq!(vars.get("undeclared"), None);
    }

    #[test]
    fn readable_lists_secrets_only_where_granted() {
        let env = |k: &str| (k == "ATOLL_VAR_TOKEN").then(|| "hunter2".to_string());
        let vars = Variables::resolve(&manifest(), &BTreeMap::new(), env).unwrap();
        let none = std::collections::BTreeSet::new();
        let seen: Vec<_> = vars.readable(&none).map(|(n, _)| n).collect();
        assert_eq!(seen, ["a", "b", "c"]);
        let granted = std::collections::BTreeSet::from(["token".to_string()]);
        assert!(vars.readable(&granted).any(|(n, v)| n == "token" && v == "hunter2"));
    }

    #[test]
    fn secrets_do_not_print() {
        let env = |k: &str| (k == "ATOLL_VAR_TOKEN").then(|| "hunter2".to_string());
        let vars = Variables::resolve(&manifest(), &BTreeMap::new(), env).unwrap();
        let shown = format!("{vars:?}");
        assert!(!shown.contains("hunter2") && shown.contains("<secret>"), "{shown}");
    }
}
