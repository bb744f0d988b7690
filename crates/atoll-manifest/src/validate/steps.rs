//! Pipelines: steps, groups, state keys and `on_error`, checked at load so
//! a pipeline that names a key no earlier step produces never runs.

use super::Checker;
use crate::model::*;
use crate::raw::{RawFunction, RawStep};
use crate::{Location, parse_duration};
use std::collections::{BTreeMap, HashSet};
use toml::Spanned;

pub(super) type Functions = BTreeMap<Spanned<String>, Spanned<RawFunction>>;

/// Where a pipeline comes from: its key prefix (`routes[2]`), the entry's
/// location, and what it was written as.
pub(super) struct Source<'a> {
    pub key: &'a str,
    pub loc: Location,
    pub function: Option<&'a Spanned<String>>,
    pub steps: Option<&'a Spanned<Vec<Spanned<RawStep>>>>,
    pub response: Option<&'a Spanned<String>>,
    /// Keys the state starts with (a schedule's seed state).
    pub seeded: Vec<String>,
}

pub(super) fn check_pipeline(c: &mut Checker, src: Source<'_>, functions: &Functions) -> Option<Pipeline> {
    let before = c.errors.len();
    let key = src.key;
    let mut produced = StateKeys::default();
    for k in &src.seeded {
        produced.add(k);
    }
    let mut steps = Vec::new();
    match (src.function, src.steps) {
        (Some(f), None) => {
            let call = Call {
                function: f.get_ref().clone(),
                op: "handle".into(),
                key: f.get_ref().clone(),
                with: Vec::new(),
                input: None,
                on_error: OnError::default(),
                loc: c.loc(f),
            };
            known_function(c, &format!("{key}.fn"), f, functions);
            produced.add(&call.key);
            steps.push(Step::Call(call));
        }
        (None, Some(list)) => {
            if list.get_ref().is_empty() {
                let loc = c.loc(list);
                c.err(loc, format!("{key}.steps"), "a pipeline needs at least one step");
            }
            for (i, raw) in list.get_ref().iter().enumerate() {
                let skey = format!("{key}.steps[{i}]");
                if let Some(step) = check_step(c, &skey, raw, functions, &mut produced) {
                    steps.push(step);
                }
            }
        }
        (Some(f), Some(_)) => {
            let loc = c.loc(f);
            c.err(
                loc,
                format!("{key}.fn"),
                "give either `fn` (one step) or `steps`, not both",
            );
        }
        (None, None) => c.err(src.loc, key, "needs `steps = [{ fn = \"...\" }]` or `fn = \"...\"`"),
    }
    let response = match src.response {
        Some(r) => {
            if !produced.contains(r.get_ref()) {
                let loc = c.loc(r);
                c.err(
                    loc,
                    format!("{key}.response"),
                    produced.missing(r.get_ref(), "the response"),
                );
            }
            Some(r.get_ref().clone())
        }
        None => {
            if let Some(Step::Group(g)) = steps.last() {
                c.err(
                    g.loc,
                    format!("{key}.steps[{}]", steps.len() - 1),
                    "the last step is a group, so which output is the response is ambiguous: add `response = \"<key>\"` to the pipeline",
                );
            }
            None
        }
    };
    (c.errors.len() == before).then_some(Pipeline { steps, response })
}

fn check_step(
    c: &mut Checker,
    key: &str,
    raw: &Spanned<RawStep>,
    functions: &Functions,
    produced: &mut StateKeys,
) -> Option<Step> {
    let r = raw.get_ref();
    let Some(members) = &r.group else {
        if let Some(t) = &r.timeout {
            let loc = c.loc(t);
            c.err(
                loc,
                format!("{key}.timeout"),
                "`timeout` belongs to a group; a function's own timeout is set in [functions]",
            );
        }
        let call = check_call(c, key, raw, functions, produced);
        // The step still produces its key when something else about it is
        // wrong, so later steps are not blamed for its mistake.
        if let Some(k) = written_key(r) {
            produced.add(k);
        }
        return call.map(Step::Call);
    };
    let loc = c.loc(raw);
    for (field, present) in [
        ("fn", r.function.is_some()),
        ("op", r.op.is_some()),
        ("as", r.as_key.is_some()),
        ("with", r.with.is_some()),
        ("input", r.input.is_some()),
        ("on_error", r.on_error.is_some()),
    ] {
        if present {
            c.err(
                loc,
                format!("{key}.{field}"),
                format!("a group step takes only `group` and `timeout`; put `{field}` on the calls inside the group"),
            );
        }
    }
    if members.get_ref().is_empty() {
        let mloc = c.loc(members);
        c.err(mloc, format!("{key}.group"), "a group needs at least one call");
    }
    let timeout = r.timeout.as_ref().and_then(|t| match parse_duration(t.get_ref()) {
        Ok(d) => Some(d),
        Err(e) => {
            let tloc = c.loc(t);
            c.err(tloc, format!("{key}.timeout"), e);
            None
        }
    });
    // Members see the state as it was when the group started.
    let mut calls: Vec<Call> = Vec::new();
    let mut keys_written: HashSet<String> = HashSet::new();
    let mut written: Vec<&str> = Vec::new();
    for (i, m) in members.get_ref().iter().enumerate() {
        let mkey = format!("{key}.group[{i}]");
        if m.get_ref().group.is_some() {
            let mloc = c.loc(m);
            c.err(mloc, &mkey, "groups cannot be nested");
            continue;
        }
        written.extend(written_key(m.get_ref()));
        if let Some(call) = check_call(c, &mkey, m, functions, produced) {
            if !keys_written.insert(call.key.clone()) {
                c.err(
                    call.loc,
                    &mkey,
                    format!(
                        "two calls in this group write the state entry \"{}\"; give one of them a different `as`",
                        call.key
                    ),
                );
            }
            calls.push(call);
        }
    }
    for k in written {
        produced.add(k);
    }
    Some(Step::Group(Group { calls, timeout, loc }))
}

fn check_call(
    c: &mut Checker,
    key: &str,
    raw: &Spanned<RawStep>,
    functions: &Functions,
    produced: &StateKeys,
) -> Option<Call> {
    let r = raw.get_ref();
    let before = c.errors.len();
    let Some(f) = &r.function else {
        let loc = c.loc(raw);
        c.err(loc, key, "a step needs `fn = \"<function>\"` (or `group = [...]`)");
        return None;
    };
    known_function(c, &format!("{key}.fn"), f, functions);
    let op = match &r.op {
        Some(op) if op.get_ref().is_empty() => {
            let loc = c.loc(op);
            c.err(loc, format!("{key}.op"), "the operation name is empty");
            String::new()
        }
        Some(op)
            if op.get_ref() != "handle"
                && let Some(kind) = without_operations(f, functions) =>
        {
            let loc = c.loc(op);
            c.err(
                loc,
                format!("{key}.op"),
                format!(
                    "function \"{}\" is {kind}, which has no operations; remove `op`",
                    f.get_ref()
                ),
            );
            String::new()
        }
        Some(op) => op.get_ref().clone(),
        None => "handle".into(),
    };
    let state_key = match &r.as_key {
        Some(a) if !is_key(a.get_ref()) => {
            let loc = c.loc(a);
            c.err(
                loc,
                format!("{key}.as"),
                format!(
                    "\"{}\" is not a valid state key (letters, digits, -, _ and .)",
                    a.get_ref()
                ),
            );
            String::new()
        }
        Some(a) => a.get_ref().clone(),
        None => f.get_ref().clone(),
    };
    let mut with = Vec::new();
    if let Some(w) = &r.with {
        if w.get_ref().is_empty() {
            let loc = c.loc(w);
            c.err(
                loc,
                format!("{key}.with"),
                "`with` is empty; leave it out to let the call see all of the state",
            );
        }
        for (alias, target) in w.get_ref() {
            if !produced.contains(target.get_ref()) {
                let loc = c.loc(target);
                c.err(
                    loc,
                    format!("{key}.with.{alias}"),
                    produced.missing(target.get_ref(), "`with`"),
                );
            }
            with.push((alias.clone(), target.get_ref().clone()));
        }
    }
    let input = r.input.as_ref().map(|i| {
        if !produced.contains(i.get_ref()) {
            let loc = c.loc(i);
            c.err(loc, format!("{key}.input"), produced.missing(i.get_ref(), "`input`"));
        }
        i.get_ref().clone()
    });
    let on_error = match &r.on_error {
        Some(v) => check_on_error(c, &format!("{key}.on_error"), v),
        None => OnError::default(),
    };
    (c.errors.len() == before).then(|| Call {
        function: f.get_ref().clone(),
        op,
        key: state_key,
        with,
        input,
        on_error,
        loc: c.loc(f),
    })
}

/// `"continue"`, `"return"`, `{ any = ... }`, or
/// `{ codes = { 404 = "continue" }, other = "return" }`.
fn check_on_error(c: &mut Checker, key: &str, v: &Spanned<toml::Value>) -> OnError {
    let loc = c.loc(v);
    let action = |c: &mut Checker, what: &str, value: &toml::Value| -> ErrorAction {
        match value.as_str() {
            Some("continue") => ErrorAction::Continue,
            Some("return") => ErrorAction::Return,
            _ => {
                c.err(
                    loc,
                    format!("{key}{what}"),
                    format!("expected \"continue\" or \"return\", found {value}"),
                );
                ErrorAction::Return
            }
        }
    };
    match v.get_ref() {
        toml::Value::String(_) => OnError {
            codes: BTreeMap::new(),
            other: action(c, "", v.get_ref()),
        },
        toml::Value::Table(t) => {
            let mut out = OnError::default();
            for k in t.keys().filter(|k| !["any", "codes", "other"].contains(&k.as_str())) {
                c.err(
                    loc,
                    format!("{key}.{k}"),
                    format!("unknown key `{k}` (expected `any`, or `codes` and `other`)"),
                );
            }
            if let Some(any) = t.get("any") {
                if t.contains_key("codes") || t.contains_key("other") {
                    c.err(
                        loc,
                        key,
                        "`any` applies to every code: do not combine it with `codes` or `other`",
                    );
                }
                out.other = action(c, ".any", any);
                return out;
            }
            if let Some(other) = t.get("other") {
                out.other = action(c, ".other", other);
            }
            match t.get("codes") {
                Some(toml::Value::Table(codes)) => {
                    for (code, value) in codes {
                        match code.parse::<u16>() {
                            Ok(n) if (100..=599).contains(&n) => {
                                let a = action(c, &format!(".codes.{code}"), value);
                                out.codes.insert(n, a);
                            }
                            _ => c.err(
                                loc,
                                format!("{key}.codes.{code}"),
                                format!("\"{code}\" is not a status code (100-599)"),
                            ),
                        }
                    }
                }
                Some(_) => c.err(
                    loc,
                    format!("{key}.codes"),
                    "`codes` is a table: codes = { 404 = \"continue\" }",
                ),
                None => {}
            }
            out
        }
        other => {
            c.err(
                loc,
                key,
                format!("expected \"continue\", \"return\" or a table like {{ codes = {{ 404 = \"continue\" }} }}, found {other}"),
            );
            OnError::default()
        }
    }
}

/// The state entry a call writes: `as`, else its function's name.
fn written_key(r: &RawStep) -> Option<&str> {
    r.as_key.as_ref().or(r.function.as_ref()).map(|k| k.get_ref().as_str())
}

/// The state entries produced so far in a pipeline, in the order they were
/// first written (for messages) and as a set (so a pipeline of thousands of
/// steps is not checked in quadratic time).
#[derive(Default)]
struct StateKeys {
    order: Vec<String>,
    known: HashSet<String>,
}

impl StateKeys {
    fn add(&mut self, key: &str) {
        if self.known.insert(key.to_string()) {
            self.order.push(key.to_string());
        }
    }

    fn contains(&self, key: &str) -> bool {
        self.known.contains(key)
    }

    /// Why `what` cannot read `key`, with what it could read instead.
    fn missing(&self, key: &str, what: &str) -> String {
        if self.order.is_empty() {
            format!("{what} names the state entry \"{key}\", but no earlier step produces one")
        } else {
            format!(
                "{what} names the state entry \"{key}\", which no earlier step produces (available: {})",
                super::some_of(self.order.iter().map(String::as_str), self.order.len())
            )
        }
    }
}

fn known_function(c: &mut Checker, key: &str, f: &Spanned<String>, functions: &Functions) {
    let name = f.get_ref();
    if !functions.contains_key(name.as_str()) {
        let hint = if functions.is_empty() {
            "no functions are declared; add a [functions.<name>] table".to_string()
        } else {
            format!(
                "declared functions: {}",
                super::some_of(functions.keys().map(|k| k.get_ref().as_str()), functions.len())
            )
        };
        let loc = c.loc(f);
        c.err(loc, key, format!("unknown function \"{name}\" ({hint})"));
    }
}

/// What the step's function is, if its ABI has no operations to name
/// (`abi = "wagi"` or `"wasi-http"`).
fn without_operations(f: &Spanned<String>, functions: &Functions) -> Option<&'static str> {
    let abi = functions.get(f.get_ref().as_str())?.get_ref().abi.as_ref()?;
    match abi.get_ref().as_str() {
        "wagi" => Some("a WAGI (CGI) program"),
        "wasi-http" => Some("a wasi:http component"),
        _ => None,
    }
}

fn is_key(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}
