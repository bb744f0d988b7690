//! Turns the raw manifest into the model, collecting every error on the way.

mod queries;
mod steps;

use crate::error::{ManifestError, ManifestErrors, SourceText};
use crate::model::*;
use crate::raw::*;
use crate::{HostPattern, Location, RoutePath, Template, TopicPattern, check_topic, parse_duration, parse_size};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use toml::Spanned;

struct Checker {
    src: SourceText,
    errors: Vec<ManifestError>,
}

impl Checker {
    fn loc<T>(&self, s: &Spanned<T>) -> Location {
        self.src.locate(s.span())
    }

    fn err(&mut self, loc: Location, key: impl Into<String>, msg: impl Into<String>) {
        self.errors.push(self.src.error(loc, key, msg));
    }
}

pub(crate) fn validate(src: SourceText) -> Result<Manifest, ManifestErrors> {
    let raw: RawManifest = match toml::from_str(&src.text) {
        Ok(raw) => raw,
        Err(e) => return Err(toml_error(&src, &e).into()),
    };
    let mut c = Checker {
        src: src.clone(),
        errors: Vec::new(),
    };

    let app = match &raw.app {
        Some(app) => check_app(&mut c, app),
        None => {
            c.errors
                .push(src.file_error("missing the [app] table (it needs at least `name = \"...\"`)"));
            None
        }
    };

    let variables = check_variables(&mut c, &raw.variables);
    let queries = queries::check_queries(&mut c, &raw.queries);
    let mut functions = BTreeMap::new();
    for (name, f) in &raw.functions {
        if let Some(function) = check_function(&mut c, name, f, &variables, &raw.queries) {
            functions.insert(name.get_ref().clone(), function);
        }
    }
    let declared: BTreeSet<&str> = raw.functions.keys().map(|k| k.get_ref().as_str()).collect();
    check_link_targets(&mut c, &functions, &declared);
    let schedules: Vec<Schedule> = raw
        .schedules
        .iter()
        .enumerate()
        .filter_map(|(i, r)| check_schedule(&mut c, i, r, &raw.functions))
        .collect();
    let mut names = HashSet::new();
    for s in &schedules {
        if !names.insert(s.name.clone()) {
            c.err(s.loc, "schedules", format!("two schedules are named \"{}\"", s.name));
        }
    }
    let subscriptions = raw
        .subscriptions
        .iter()
        .enumerate()
        .filter_map(|(i, r)| check_subscription(&mut c, i, r, &raw.functions))
        .collect();
    let http_auth = raw
        .http_auth
        .iter()
        .enumerate()
        .filter_map(|(i, a)| check_http_auth(&mut c, i, a, &variables))
        .collect();

    let mut routes = Vec::new();
    let mut seen: HashMap<(String, String), Location> = HashMap::new();
    for (index, r) in raw.routes.iter().enumerate() {
        if let Some(route) = check_route(&mut c, index, r, &raw.functions) {
            check_duplicate(&mut c, &route, &mut seen);
            routes.push(route);
        }
    }

    let dir = src.path.parent().map(Path::to_path_buf).unwrap_or_default();
    let dir = if dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        dir
    };

    match app {
        Some(app) if c.errors.is_empty() => Ok(Manifest {
            source: src,
            dir,
            app,
            functions,
            routes,
            variables,
            http_auth,
            schedules,
            subscriptions,
            queries,
        }),
        _ => {
            c.errors.sort_by_key(|e| e.location.map(|l| l.start).unwrap_or(0));
            Err(ManifestErrors(c.errors))
        }
    }
}

fn check_app(c: &mut Checker, app: &Spanned<RawApp>) -> Option<AppInfo> {
    let a = app.get_ref();
    let name = a.name.get_ref();
    if !is_name(name) {
        let loc = c.loc(&a.name);
        c.err(
            loc,
            "app.name",
            format!("\"{name}\" is not a valid app name (letters, digits, - and _)"),
        );
        return None;
    }
    // Both checked, so one pass reports both.
    let base = match &a.base {
        Some(base) => match crate::mount::check_base(base.get_ref()) {
            Ok(b) => Some(b),
            Err(e) => {
                let loc = c.loc(base);
                c.err(loc, "app.base", e);
                None
            }
        },
        None => Some("/".to_string()),
    };
    let hosts = check_app_hosts(c, a.hosts.as_ref());
    Some(AppInfo {
        name: name.clone(),
        version: a
            .version
            .as_ref()
            .map_or_else(|| "0.0.0".to_string(), |v| v.get_ref().clone()),
        description: a.description.clone(),
        base: base?,
        hosts: hosts?,
    })
}

/// `[app] hosts`: each a host name or `*.name`, none twice.
fn check_app_hosts(c: &mut Checker, hosts: Option<&Spanned<Vec<Spanned<String>>>>) -> Option<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    let mut ok = true;
    for (i, h) in hosts
        .map(|h| h.get_ref().as_slice())
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let loc = c.loc(h);
        match crate::mount::check_host(h.get_ref()) {
            Ok(host) if out.contains(&host) => {
                c.err(loc, format!("app.hosts[{i}]"), format!("\"{host}\" is listed twice"));
                ok = false;
            }
            Ok(host) => out.push(host),
            Err(e) => {
                c.err(loc, format!("app.hosts[{i}]"), e);
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

fn check_variables(
    c: &mut Checker,
    raw: &BTreeMap<Spanned<String>, Spanned<RawVariable>>,
) -> BTreeMap<String, Variable> {
    let mut out = BTreeMap::new();
    for (name, v) in raw {
        let n = name.get_ref();
        let key = format!("variables.{n}");
        let loc = c.loc(name);
        let valid = n.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
            && n.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            && n.len() <= 64;
        if !valid {
            c.err(
                loc,
                &key,
                format!(
                    "\"{n}\" is not a valid variable name (lower-case letters, digits and _, starting with a letter)"
                ),
            );
            continue;
        }
        let raw = v.get_ref();
        let required = raw.required.as_ref().is_some_and(|r| *r.get_ref());
        let secret = raw.secret.as_ref().is_some_and(|s| *s.get_ref());
        if let (Some(d), true) = (&raw.default, required) {
            let dloc = c.loc(d);
            c.err(
                dloc,
                format!("{key}.default"),
                "a required variable cannot have a default (it is never missing)",
            );
        }
        if let (Some(d), true) = (&raw.default, secret) {
            let dloc = c.loc(d);
            c.err(
                dloc,
                format!("{key}.default"),
                "a secret cannot have a default in the manifest; give its value in the environment or the runtime config",
            );
        }
        out.insert(
            n.clone(),
            Variable {
                name: n.clone(),
                default: raw.default.as_ref().map(|d| d.get_ref().clone()),
                required,
                secret,
                description: raw.description.clone(),
                loc,
            },
        );
    }
    out
}

fn check_http_auth(
    c: &mut Checker,
    index: usize,
    a: &Spanned<RawHttpAuth>,
    variables: &BTreeMap<String, Variable>,
) -> Option<HttpAuth> {
    let key = format!("http_auth[{index}]");
    let before = c.errors.len();
    let raw = a.get_ref();
    if raw.hosts.get_ref().is_empty() {
        let loc = c.loc(&raw.hosts);
        c.err(
            loc,
            format!("{key}.hosts"),
            "list at least one host the headers are sent to",
        );
    }
    let hosts = host_patterns(c, &format!("{key}.hosts"), Some(&raw.hosts));
    let mut headers = Vec::new();
    for (name, value) in raw.headers.get_ref() {
        let n = name.get_ref();
        let hkey = format!("{key}.headers.{n}");
        let token = !n.is_empty()
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !token {
            let loc = c.loc(name);
            c.err(loc, &hkey, format!("\"{n}\" is not a valid header name"));
            continue;
        }
        let loc = c.loc(value);
        match Template::parse(value.get_ref()) {
            Ok(t) => {
                for (var, wants_secret) in t.references() {
                    match variables.get(var) {
                        None => c.err(
                            loc,
                            &hkey,
                            format!("unknown variable \"{var}\"; declare it under [variables]"),
                        ),
                        Some(v) if v.secret && !wants_secret => c.err(
                            loc,
                            &hkey,
                            format!("\"{var}\" is a secret: write {{{{ secret.{var} }}}}"),
                        ),
                        Some(v) if !v.secret && wants_secret => c.err(
                            loc,
                            &hkey,
                            format!(
                                "\"{var}\" is not declared secret: write {{{{ var.{var} }}}} or add `secret = true`"
                            ),
                        ),
                        Some(_) => {}
                    }
                }
                headers.push((n.to_ascii_lowercase(), t));
            }
            Err(e) => c.err(loc, &hkey, e),
        }
    }
    (c.errors.len() == before).then(|| HttpAuth {
        hosts,
        headers,
        loc: c.loc(a),
    })
}

fn host_patterns(c: &mut Checker, key: &str, list: Option<&Spanned<Vec<Spanned<String>>>>) -> Vec<HostPattern> {
    let mut out = Vec::new();
    for h in list.map(|l| l.get_ref().as_slice()).unwrap_or_default() {
        match HostPattern::parse(h.get_ref()) {
            Ok(p) => out.push(p),
            Err(e) => {
                let loc = c.loc(h);
                c.err(loc, key, e);
            }
        }
    }
    out
}

fn names(c: &mut Checker, key: &str, list: Option<&Spanned<Vec<Spanned<String>>>>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut seen = HashSet::new();
    for n in list.map(|l| l.get_ref().as_slice()).unwrap_or_default() {
        let loc = c.loc(n);
        if !is_name(n.get_ref()) {
            c.err(
                loc,
                key,
                format!("\"{}\" is not a valid name (letters, digits, - and _)", n.get_ref()),
            );
        } else if !seen.insert(n.get_ref().as_str()) {
            c.err(loc, key, format!("\"{}\" is listed twice", n.get_ref()));
        } else {
            out.push(n.get_ref().clone());
        }
    }
    out
}

/// The capability-specific keys of a function: each needs its capability,
/// and each capability that needs a list gets one.
fn check_grants(
    c: &mut Checker,
    key: &str,
    raw: &RawFunction,
    caps_loc: Location,
    capabilities: &BTreeSet<Capability>,
    variables: &BTreeMap<String, Variable>,
    declared_queries: &BTreeMap<Spanned<String>, Spanned<RawQuery>>,
) -> Grants {
    let allowed_hosts = host_patterns(c, &format!("{key}.allowed_hosts"), raw.allowed_hosts.as_ref());
    let mut kv_stores = names(c, &format!("{key}.kv_stores"), raw.kv_stores.as_ref());
    let secrets = names(c, &format!("{key}.secrets"), raw.secrets.as_ref());
    let queries = names(c, &format!("{key}.queries"), raw.queries.as_ref());
    for q in raw.queries.as_ref().map(|l| l.get_ref().as_slice()).unwrap_or_default() {
        if !declared_queries.keys().any(|k| k.get_ref() == q.get_ref()) {
            let loc = c.loc(q);
            let known = some_of(
                declared_queries.keys().map(|k| k.get_ref().as_str()),
                declared_queries.len(),
            );
            c.err(
                loc,
                format!("{key}.queries"),
                format!(
                    "unknown query \"{}\"; declare it as [queries.{}] (declared: {})",
                    q.get_ref(),
                    q.get_ref(),
                    if known.is_empty() { "none" } else { &known }
                ),
            );
        }
    }
    if capabilities.contains(&Capability::Sql) && raw.queries.is_none() {
        c.err(
            caps_loc,
            format!("{key}.capabilities"),
            "\"sql\" is granted but no query is: list the named queries it may run in `queries`",
        );
    }
    let mut publish_topics = Vec::new();
    for t in raw
        .publish_topics
        .as_ref()
        .map(|l| l.get_ref().as_slice())
        .unwrap_or_default()
    {
        match TopicPattern::parse(t.get_ref()) {
            Ok(p) => publish_topics.push(p),
            Err(e) => {
                let loc = c.loc(t);
                c.err(loc, format!("{key}.publish_topics"), e);
            }
        }
    }
    if capabilities.contains(&Capability::Msg) && raw.publish_topics.is_none() {
        c.err(
            caps_loc,
            format!("{key}.capabilities"),
            "\"msg\" is granted but no topic is: list the topics it may publish on in `publish_topics`",
        );
    }
    for (list, field, cap) in [
        (&raw.allowed_hosts, "allowed_hosts", Capability::Http),
        (&raw.kv_stores, "kv_stores", Capability::Kv),
        (&raw.secrets, "secrets", Capability::Vars),
        (&raw.publish_topics, "publish_topics", Capability::Msg),
        (&raw.queries, "queries", Capability::Sql),
    ] {
        if let Some(l) = list
            && !capabilities.contains(&cap)
        {
            let loc = c.loc(l);
            c.err(
                loc,
                format!("{key}.{field}"),
                format!("`{field}` has no effect without the \"{cap}\" capability; add \"{cap}\" to `capabilities`"),
            );
        }
    }
    if capabilities.contains(&Capability::Http) && raw.allowed_hosts.is_none() {
        c.err(
            caps_loc,
            format!("{key}.capabilities"),
            "\"http\" is granted but no host is: list the origins it may call in `allowed_hosts`",
        );
    }
    if capabilities.contains(&Capability::Kv) && raw.kv_stores.is_none() {
        kv_stores.push("default".to_string());
    }
    for s in raw.secrets.as_ref().map(|l| l.get_ref().as_slice()).unwrap_or_default() {
        let loc = c.loc(s);
        let name = s.get_ref();
        match variables.get(name) {
            None => c.err(
                loc,
                format!("{key}.secrets"),
                format!("unknown variable \"{name}\"; declare it under [variables] with `secret = true`"),
            ),
            Some(v) if !v.secret => c.err(
                loc,
                format!("{key}.secrets"),
                format!("\"{name}\" is not a secret; any function granted \"vars\" can read it"),
            ),
            Some(_) => {}
        }
    }
    Grants {
        allowed_hosts,
        kv_stores,
        secrets,
        publish_topics,
        queries,
    }
}

/// The capability-specific lists of one function.
struct Grants {
    allowed_hosts: Vec<HostPattern>,
    kv_stores: Vec<String>,
    secrets: Vec<String>,
    publish_topics: Vec<TopicPattern>,
    queries: Vec<String>,
}

fn check_function(
    c: &mut Checker,
    name: &Spanned<String>,
    f: &Spanned<RawFunction>,
    variables: &BTreeMap<String, Variable>,
    declared_queries: &BTreeMap<Spanned<String>, Spanned<RawQuery>>,
) -> Option<Function> {
    let n = name.get_ref();
    let key = format!("functions.{n}");
    let before = c.errors.len();
    if !is_function_name(n) {
        let loc = c.loc(name);
        c.err(
            loc,
            &key,
            format!("\"{n}\" is not a valid function name ({FUNCTION_NAME_RULE})"),
        );
    }
    let raw = f.get_ref();

    if raw.source.get_ref().trim().is_empty() {
        let loc = c.loc(&raw.source);
        c.err(loc, format!("{key}.source"), "the module path is empty");
    }

    let abi = match raw.abi.as_ref().map(|a| (a, a.get_ref().as_str())) {
        None | Some((_, "wapc")) => Abi::Wapc,
        Some((_, "wagi")) => Abi::Wagi,
        Some((_, "wasi-http")) => Abi::WasiHttp,
        Some((a, other)) => {
            let loc = c.loc(a);
            c.err(
                loc,
                format!("{key}.abi"),
                format!("unknown ABI \"{other}\" (expected \"wapc\", \"wasi-http\" or \"wagi\")"),
            );
            Abi::Wapc
        }
    };

    let timeout = match &raw.timeout {
        None => DEFAULT_TIMEOUT,
        Some(t) => match parse_duration(t.get_ref()) {
            Ok(d) if d <= MAX_TIMEOUT => d,
            Ok(_) => {
                let loc = c.loc(t);
                c.err(loc, format!("{key}.timeout"), "must be at most 1h");
                DEFAULT_TIMEOUT
            }
            Err(e) => {
                let loc = c.loc(t);
                c.err(loc, format!("{key}.timeout"), e);
                DEFAULT_TIMEOUT
            }
        },
    };

    let (memory, memory_loc) = match &raw.memory {
        None => (DEFAULT_MEMORY, c.loc(f)),
        Some(m) => {
            let loc = c.loc(m);
            match parse_size(m.get_ref()) {
                Ok(bytes) if bytes >= MIN_MEMORY => (bytes, loc),
                Ok(_) => {
                    c.err(
                        loc,
                        format!("{key}.memory"),
                        "must be at least 64KiB, one WebAssembly page",
                    );
                    (DEFAULT_MEMORY, loc)
                }
                Err(e) => {
                    c.err(loc, format!("{key}.memory"), e);
                    (DEFAULT_MEMORY, loc)
                }
            }
        }
    };

    let max_concurrency = raw.max_concurrency.as_ref().and_then(|n| match *n.get_ref() {
        v if (1..=i64::from(MAX_CONCURRENCY)).contains(&v) => Some(v as u32),
        v => {
            let loc = c.loc(n);
            c.err(
                loc,
                format!("{key}.max_concurrency"),
                format!("{v} is out of range: give a number of invocations from 1 to {MAX_CONCURRENCY}"),
            );
            None
        }
    });
    let max_queue = match &raw.max_queue {
        None => DEFAULT_MAX_QUEUE,
        Some(q) => {
            let loc = c.loc(q);
            match parse_duration(q.get_ref()) {
                Ok(_) if raw.max_concurrency.is_none() => {
                    c.err(
                        loc,
                        format!("{key}.max_queue"),
                        "has no effect without max_concurrency: calls only wait for a slot when the function has a limit",
                    );
                    DEFAULT_MAX_QUEUE
                }
                Ok(d) if d <= MAX_QUEUE => d,
                Ok(_) => {
                    c.err(loc, format!("{key}.max_queue"), "must be at most 60s");
                    DEFAULT_MAX_QUEUE
                }
                Err(e) => {
                    c.err(loc, format!("{key}.max_queue"), e);
                    DEFAULT_MAX_QUEUE
                }
            }
        }
    };

    let mut capabilities = BTreeSet::new();
    if let Some(caps) = &raw.capabilities {
        for cap in caps.get_ref() {
            let loc = c.loc(cap);
            match Capability::from_name(cap.get_ref()) {
                Some(k) if !capabilities.insert(k) => {
                    c.err(loc, format!("{key}.capabilities"), format!("\"{k}\" is listed twice"));
                }
                Some(_) => {}
                None => {
                    let known: Vec<_> = Capability::ALL.iter().map(|c| c.name()).collect();
                    c.err(
                        loc,
                        format!("{key}.capabilities"),
                        format!("unknown capability \"{}\" (known: {})", cap.get_ref(), known.join(", ")),
                    );
                }
            }
        }
    }

    if let Some(caps) = &raw.capabilities {
        for cap in caps.get_ref() {
            if let Some(k) = Capability::from_name(cap.get_ref())
                && !abi.usable(k)
            {
                let loc = c.loc(cap);
                c.err(
                    loc,
                    format!("{key}.capabilities"),
                    format!("\"{k}\" has no effect on a {abi} function: {}", abi.what_it_can_use()),
                );
            }
        }
    }

    if abi != Abi::Wapc
        && let Some(links) = &raw.links
    {
        let loc = c.loc(links);
        c.err(
            loc,
            format!("{key}.links"),
            format!("links are waPC host calls, which a {abi} function cannot make; remove `links` (a pipeline can chain it with other functions)"),
        );
    }

    let caps_loc = raw.capabilities.as_ref().map_or_else(|| c.loc(name), |l| c.loc(l));
    let Grants {
        allowed_hosts,
        kv_stores,
        secrets,
        publish_topics,
        queries,
    } = check_grants(c, &key, raw, caps_loc, &capabilities, variables, declared_queries);

    let links = check_links(c, &key, raw.links.as_ref());

    let build = raw.build.as_ref().map(|b| {
        let b = b.get_ref();
        if b.command.get_ref().trim().is_empty() {
            let loc = c.loc(&b.command);
            c.err(loc, format!("{key}.build.command"), "the build command is empty");
        }
        Build {
            command: b.command.get_ref().clone(),
            workdir: b.workdir.as_ref().map(|w| PathBuf::from(w.get_ref())),
            watch: b.watch.clone(),
        }
    });

    (c.errors.len() == before).then(|| Function {
        name: n.clone(),
        source: PathBuf::from(raw.source.get_ref()),
        source_loc: c.loc(&raw.source),
        abi,
        timeout,
        memory,
        memory_loc,
        max_concurrency,
        max_queue,
        capabilities,
        allowed_hosts,
        kv_stores,
        secrets,
        publish_topics,
        queries,
        links,
        build,
        loc: c.loc(name),
    })
}

/// Namespaces the host answers itself; a link may not take one over.
const HOST_NAMESPACES: &[&str] = &[
    "log", "request", "response", "state", "kv", "http", "vars", "files", "msg", "sql",
];

/// A function's `links`: each namespace once, none of the host's own.
/// Whether each target exists is checked once every function is known.
fn check_links(c: &mut Checker, key: &str, raw: Option<&Spanned<RawLinks>>) -> Vec<Link> {
    let Some(raw) = raw else { return Vec::new() };
    let pairs: Vec<(&Spanned<String>, &Spanned<String>)> = match raw.get_ref() {
        RawLinks::Names(names) => names.iter().map(|n| (n, n)).collect(),
        RawLinks::Routed(pairs) => pairs.iter().map(|(n, f)| (n, f)).collect(),
    };
    let mut seen = BTreeSet::new();
    let mut links = Vec::new();
    for (namespace, function) in pairs {
        let loc = c.loc(namespace);
        let ns = namespace.get_ref();
        if ns.is_empty() {
            c.err(loc, format!("{key}.links"), "a link's namespace is empty");
        } else if HOST_NAMESPACES.contains(&ns.as_str()) {
            c.err(
                loc,
                format!("{key}.links"),
                format!("\"{ns}\" is a namespace of the host's own; a link may not take it over"),
            );
        } else if !seen.insert(ns.clone()) {
            c.err(
                loc,
                format!("{key}.links"),
                format!("the namespace \"{ns}\" is linked twice"),
            );
        } else {
            links.push(Link {
                namespace: ns.clone(),
                function: function.get_ref().clone(),
                loc: c.loc(function),
            });
        }
    }
    links
}

/// Every link names a function of the app.
fn check_link_targets(c: &mut Checker, functions: &BTreeMap<String, Function>, declared: &BTreeSet<&str>) {
    for f in functions.values() {
        for link in &f.links {
            if !declared.contains(link.function.as_str()) {
                c.err(
                    link.loc,
                    format!("functions.{}.links", f.name),
                    format!(
                        "\"{}\" is not a function of this app; a link must name one declared under [functions]",
                        link.function
                    ),
                );
            }
        }
    }
}

fn check_route(
    c: &mut Checker,
    index: usize,
    r: &Spanned<RawRoute>,
    functions: &BTreeMap<Spanned<String>, Spanned<RawFunction>>,
) -> Option<Route> {
    let key = format!("routes[{index}]");
    let before = c.errors.len();
    let raw = r.get_ref();
    let route_loc = c.loc(r);

    let path = match RoutePath::parse(raw.path.get_ref()) {
        Ok(_) if raw.path.get_ref().starts_with("/-/") || raw.path.get_ref() == "/-" => {
            let loc = c.loc(&raw.path);
            c.err(
                loc,
                format!("{key}.path"),
                "paths under /-/ are reserved for Atoll's own endpoints (/-/health, /-/ready, ...)",
            );
            None
        }
        Ok(p) => Some(p),
        Err(e) => {
            let loc = c.loc(&raw.path);
            c.err(loc, format!("{key}.path"), e);
            None
        }
    };

    let methods = match &raw.method {
        None => Methods::Any,
        Some(m) => {
            let loc = c.loc(m);
            let list = match m.get_ref() {
                RawMethods::One(one) => vec![one.clone()],
                RawMethods::Many(many) => many.clone(),
            };
            check_methods(c, loc, &format!("{key}.method"), list)
        }
    };

    let pipeline = steps::check_pipeline(
        c,
        steps::Source {
            key: &key,
            loc: route_loc,
            function: raw.function.as_ref(),
            steps: raw.steps.as_ref(),
            response: raw.response.as_ref(),
            seeded: Vec::new(),
        },
        functions,
    );

    let max_body = raw.max_body.as_ref().and_then(|m| match parse_size(m.get_ref()) {
        Ok(v) => Some(v),
        Err(e) => {
            let loc = c.loc(m);
            c.err(loc, format!("{key}.max_body"), e);
            None
        }
    });

    match (path, pipeline) {
        (Some(path), Some(pipeline)) if c.errors.len() == before => Some(Route {
            index,
            methods,
            path,
            pipeline,
            max_body,
            loc: c.loc(&raw.path),
        }),
        _ => None,
    }
}

fn check_schedule(
    c: &mut Checker,
    index: usize,
    r: &Spanned<RawSchedule>,
    functions: &steps::Functions,
) -> Option<Schedule> {
    let key = format!("schedules[{index}]");
    let before = c.errors.len();
    let raw = r.get_ref();
    let loc = c.loc(r);
    let name = match &raw.name {
        Some(n) if !is_name(n.get_ref()) => {
            let nloc = c.loc(n);
            c.err(
                nloc,
                format!("{key}.name"),
                format!("\"{}\" is not a valid name (letters, digits, - and _)", n.get_ref()),
            );
            String::new()
        }
        Some(n) => n.get_ref().clone(),
        None => key.clone(),
    };
    let when = match (&raw.every, &raw.cron) {
        (Some(e), None) => match parse_duration(e.get_ref()) {
            Ok(d) if d >= std::time::Duration::from_millis(100) => Some(When::Every(d)),
            Ok(_) => {
                let eloc = c.loc(e);
                c.err(eloc, format!("{key}.every"), "must be at least 100ms");
                None
            }
            Err(err) => {
                let eloc = c.loc(e);
                c.err(eloc, format!("{key}.every"), err);
                None
            }
        },
        (None, Some(cron)) => match check_cron(cron.get_ref()) {
            Ok(()) => Some(When::Cron(cron.get_ref().clone())),
            Err(e) => {
                let cloc = c.loc(cron);
                c.err(cloc, format!("{key}.cron"), e);
                None
            }
        },
        (Some(e), Some(_)) => {
            let eloc = c.loc(e);
            c.err(eloc, format!("{key}.every"), "give either `every` or `cron`, not both");
            None
        }
        (None, None) => {
            c.err(
                loc,
                &key,
                "a schedule needs `every = \"30s\"` or `cron = \"*/5 * * * *\"`",
            );
            None
        }
    };
    let pipeline = steps::check_pipeline(
        c,
        steps::Source {
            key: &key,
            loc,
            function: raw.function.as_ref(),
            steps: raw.steps.as_ref(),
            response: raw.response.as_ref(),
            seeded: raw.state.keys().cloned().collect(),
        },
        functions,
    );
    match (when, pipeline) {
        (Some(when), Some(pipeline)) if c.errors.len() == before => Some(Schedule {
            name,
            when,
            state: raw.state.clone(),
            pipeline,
            loc,
        }),
        _ => None,
    }
}

/// A cron expression as the README promises it: 5 fields, or 6 with seconds
/// first. croner also takes a 7th field (years) and `@daily`-style names;
/// refusing those keeps one documented syntax, and parsing with croner's
/// default parser, which the scheduler uses too, means whatever passes here
/// runs there.
fn check_cron(expr: &str) -> Result<(), String> {
    let fields = expr.split_whitespace().count();
    if !(5..=6).contains(&fields) {
        let s = if fields == 1 { "" } else { "s" };
        return Err(format!(
            "\"{expr}\" has {fields} field{s}; a cron expression has 5 (minute hour day-of-month month day-of-week) or 6 (seconds first)"
        ));
    }
    match expr.parse::<croner::Cron>() {
        Ok(_) => Ok(()),
        Err(e) => Err(format!(
            "\"{expr}\" is not a cron expression ({e}); write e.g. \"*/5 * * * *\""
        )),
    }
}

fn check_subscription(
    c: &mut Checker,
    index: usize,
    r: &Spanned<RawSubscription>,
    functions: &steps::Functions,
) -> Option<Subscription> {
    let key = format!("subscriptions[{index}]");
    let before = c.errors.len();
    let raw = r.get_ref();
    let loc = c.loc(r);
    let topic = match TopicPattern::parse(raw.topic.get_ref()) {
        Ok(t) => Some(t),
        Err(e) => {
            let tloc = c.loc(&raw.topic);
            c.err(tloc, format!("{key}.topic"), e);
            None
        }
    };
    if let Some(reply) = &raw.reply_to {
        let rloc = c.loc(reply);
        if let Err(e) = check_topic(reply.get_ref()) {
            c.err(rloc, format!("{key}.reply_to"), e);
        } else if topic.as_ref().is_some_and(|t| t.matches(reply.get_ref())) {
            c.err(
                rloc,
                format!("{key}.reply_to"),
                "replying on a topic this subscription listens to would feed its own output back to it forever",
            );
        }
    }
    let durable = check_durable(c, &key, raw, topic.as_ref());
    let pipeline = steps::check_pipeline(
        c,
        steps::Source {
            key: &key,
            loc,
            function: raw.function.as_ref(),
            steps: raw.steps.as_ref(),
            response: raw.response.as_ref(),
            seeded: Vec::new(),
        },
        functions,
    );
    match (topic, pipeline) {
        (Some(topic), Some(pipeline)) if c.errors.len() == before => Some(Subscription {
            index,
            topic,
            reply_to: raw.reply_to.as_ref().map(|r| r.get_ref().clone()),
            durable,
            pipeline,
            loc,
        }),
        _ => None,
    }
}

fn check_methods(c: &mut Checker, loc: Location, key: &str, list: Vec<String>) -> Methods {
    if list.is_empty() {
        c.err(loc, key, "the method list is empty");
        return Methods::Any;
    }
    let upper: Vec<String> = list.iter().map(|m| m.to_ascii_uppercase()).collect();
    if upper.iter().any(|m| m == "ANY") {
        if upper.len() > 1 {
            c.err(loc, key, "\"ANY\" cannot be combined with other methods");
        }
        return Methods::Any;
    }
    for m in &upper {
        let token = !m.is_empty() && m.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !token {
            c.err(loc, key, format!("\"{m}\" is not an HTTP method"));
        }
    }
    let mut dedup = upper.clone();
    dedup.sort();
    dedup.dedup();
    if dedup.len() != upper.len() {
        c.err(loc, key, "a method is listed twice");
    }
    Methods::Only(upper)
}

fn check_duplicate(c: &mut Checker, route: &Route, seen: &mut HashMap<(String, String), Location>) {
    let methods: Vec<String> = match &route.methods {
        Methods::Any => vec!["ANY".into()],
        Methods::Only(list) => list.clone(),
    };
    for m in methods {
        let k = (m.clone(), route.path.shape());
        if let Some(first) = seen.get(&k) {
            let line = first.line;
            c.err(
                route.loc,
                format!("routes[{}].path", route.index),
                format!("duplicate route: {m} {} is already declared on line {line}", route.path),
            );
        } else {
            seen.insert(k, route.loc);
        }
    }
}

/// Up to a handful of `items` (of `count` in all) for a message: a list of
/// ten thousand names helps no one, and repeating it in every error would
/// make the report grow with the square of the manifest.
fn some_of<'a>(items: impl Iterator<Item = &'a str>, count: usize) -> String {
    const SHOWN: usize = 10;
    let mut out = items.take(SHOWN).collect::<Vec<_>>().join(", ");
    if count > SHOWN {
        out.push_str(&format!(" and {} more", count - SHOWN));
    }
    out
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A TOML syntax or type error, located, with the key path recovered from the
/// nearest table header so the message says where as well as what.
fn toml_error(src: &SourceText, e: &toml::de::Error) -> ManifestError {
    let msg = e.message().trim().to_string();
    match e.span() {
        Some(span) => {
            let loc = src.locate(span.clone());
            src.error(loc, key_at(&src.text, span.start), msg)
        }
        None => src.file_error(msg),
    }
}

fn key_at(text: &str, offset: usize) -> String {
    // The span is the TOML parser's; stepping back to a character boundary
    // keeps a span that splits a character from panicking here.
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let header = before
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| {
            l.trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        })
        .unwrap_or_default();
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = &text[line_start..];
    let line = line.lines().next().unwrap_or("");
    let key = line
        .split_once('=')
        .map(|(k, _)| k.trim())
        .filter(|k| !k.starts_with('['))
        .unwrap_or("");
    match (header.is_empty(), key.is_empty()) {
        (true, _) => key.to_string(),
        (false, true) => header,
        (false, false) => format!("{header}.{key}"),
    }
}

/// `durable`, `max_deliver` and `dead_letter`: the last two only with the
/// first, a count from 1 to 1000, and a dead-letter topic the subscription
/// does not itself listen to.
fn check_durable(c: &mut Checker, key: &str, raw: &RawSubscription, topic: Option<&TopicPattern>) -> Option<Durable> {
    let durable = raw.durable.as_ref().is_some_and(|d| *d.get_ref());
    if !durable {
        for (field, loc) in [
            ("max_deliver", raw.max_deliver.as_ref().map(|m| c.loc(m))),
            ("dead_letter", raw.dead_letter.as_ref().map(|d| c.loc(d))),
        ] {
            if let Some(loc) = loc {
                c.err(
                    loc,
                    format!("{key}.{field}"),
                    format!("{field} applies to durable subscriptions only; add durable = true"),
                );
            }
        }
        return None;
    }
    let max_deliver = match &raw.max_deliver {
        None => Durable::DEFAULT_MAX_DELIVER,
        Some(m) => match u32::try_from(*m.get_ref()) {
            Ok(n @ 1..=1000) => n,
            _ => {
                let loc = c.loc(m);
                c.err(
                    loc,
                    format!("{key}.max_deliver"),
                    format!("must be from 1 to 1000, not {}", m.get_ref()),
                );
                Durable::DEFAULT_MAX_DELIVER
            }
        },
    };
    let dead_letter = match &raw.dead_letter {
        None => None,
        Some(d) => {
            let loc = c.loc(d);
            if let Err(e) = check_topic(d.get_ref()) {
                c.err(loc, format!("{key}.dead_letter"), e);
            } else if topic.is_some_and(|t| t.matches(d.get_ref())) {
                c.err(
                    loc,
                    format!("{key}.dead_letter"),
                    "a dead letter on a topic this subscription listens to would be delivered to it again",
                );
            }
            Some(d.get_ref().clone())
        }
    };
    Some(Durable {
        max_deliver,
        dead_letter,
    })
}
