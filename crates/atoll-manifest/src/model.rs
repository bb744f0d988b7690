//! The validated manifest: what the rest of Atoll builds on.

use crate::error::{ManifestErrors, SourceText};
use crate::{HostPattern, Location, RoutePath, Template, TopicPattern};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_MEMORY: u64 = 64 << 20;
/// One WebAssembly page: no module can run in less.
pub const MIN_MEMORY: u64 = 64 << 10;
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
/// How long a call waits for a slot of a function at its `max_concurrency`
/// when `max_queue` is not given.
pub const DEFAULT_MAX_QUEUE: Duration = Duration::from_secs(1);
/// The longest `max_queue`: a queued request holds a connection and a
/// server-wide permit while it waits.
pub const MAX_QUEUE: Duration = Duration::from_secs(60);
/// The largest `max_concurrency` (beyond it the limit means nothing: the
/// server-wide limit and the instance pool come first).
pub const MAX_CONCURRENCY: u32 = 100_000;

#[derive(Debug, Clone)]
pub struct Manifest {
    pub source: SourceText,
    /// The directory the manifest's relative paths are resolved against.
    pub dir: PathBuf,
    pub app: AppInfo,
    pub functions: BTreeMap<String, Function>,
    pub routes: Vec<Route>,
    pub variables: BTreeMap<String, Variable>,
    pub http_auth: Vec<HttpAuth>,
    pub schedules: Vec<Schedule>,
    pub subscriptions: Vec<Subscription>,
    /// Named queries (`[queries.NAME]`): the only SQL functions can run.
    pub queries: BTreeMap<String, Query>,
}

/// Rows one query returns unless it sets `max_rows`.
pub const DEFAULT_MAX_ROWS: usize = 1000;
/// The largest `max_rows`.
pub const MAX_ROWS: usize = 100_000;

/// A query a function granted it may run by name, with bound parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub name: String,
    /// The `[sql.NAME]` database it runs on: `default` unless given.
    pub database: String,
    pub body: QueryBody,
    /// More rows than this is an error, not a silent cut.
    pub max_rows: usize,
    pub loc: Location,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryBody {
    /// One statement binding `$1` to `$params`.
    Sql { sql: String, shape: crate::SqlShape },
    /// These queries (each a `Sql` one on the same database), in order, in
    /// one transaction: all of them happen or none does.
    Transaction(Vec<String>),
}

impl Query {
    /// `"sql"` for one statement, `"transaction"` for a group, for messages.
    pub fn kind(&self) -> &'static str {
        match self.body {
            QueryBody::Sql { .. } => "sql",
            QueryBody::Transaction(_) => "transaction",
        }
    }
}

/// Steps run for a trigger, and which state entry is the result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pipeline {
    pub steps: Vec<Step>,
    /// The state entry returned; `None` means the last step's output.
    pub response: Option<String>,
}

impl Pipeline {
    /// Every call, in order, groups flattened.
    pub fn calls(&self) -> impl Iterator<Item = &Call> {
        self.steps.iter().flat_map(|s| match s {
            Step::Call(c) => std::slice::from_ref(c),
            Step::Group(g) => g.calls.as_slice(),
        })
    }

    /// `a -> [b, c] -> d`, for logs and `atoll inspect`.
    pub fn describe(&self) -> String {
        self.steps
            .iter()
            .map(|s| match s {
                Step::Call(c) => c.function.clone(),
                Step::Group(g) => format!(
                    "[{}]",
                    g.calls
                        .iter()
                        .map(|c| c.function.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
            .collect::<Vec<_>>()
            .join(" -> ")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Call(Call),
    /// Calls run concurrently, each in its own instance, all seeing the
    /// state as it was when the group started.
    Group(Group),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub function: String,
    pub op: String,
    /// The state entry its output goes to: `as`, else the function's name.
    pub key: String,
    /// `alias -> state key`: when given, the call sees only these entries,
    /// under these names.
    pub with: Vec<(String, String)>,
    /// The state entry sent as payload; `None` sends the trigger's input
    /// (the request body, the message).
    pub input: Option<String>,
    pub on_error: OnError,
    pub loc: Location,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub calls: Vec<Call>,
    /// The whole group's deadline; each member also keeps its own.
    pub timeout: Option<Duration>,
    pub loc: Location,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorAction {
    /// Store the error (as JSON) under the call's key and go on.
    Continue,
    /// Stop and answer with the error.
    Return,
}

/// What to do when a call fails, by the failure's status code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnError {
    pub codes: BTreeMap<u16, ErrorAction>,
    pub other: ErrorAction,
}

impl Default for OnError {
    fn default() -> Self {
        OnError {
            codes: BTreeMap::new(),
            other: ErrorAction::Return,
        }
    }
}

impl OnError {
    pub fn action(&self, status: u16) -> ErrorAction {
        self.codes.get(&status).copied().unwrap_or(self.other)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum When {
    Every(Duration),
    /// A standard cron expression (5 fields, or 6 with seconds first), in UTC.
    Cron(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// From `name`, else `schedules[i]`: used in logs.
    pub name: String,
    pub when: When,
    /// State every run starts with.
    pub state: BTreeMap<String, String>,
    pub pipeline: Pipeline,
    pub loc: Location,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub index: usize,
    pub topic: TopicPattern,
    /// Where the pipeline's result is published, if anywhere.
    pub reply_to: Option<String>,
    /// Kept by the broker until a pipeline has handled them (on NATS, a
    /// JetStream consumer): at-least-once rather than at-most-once.
    pub durable: Option<Durable>,
    pub pipeline: Pipeline,
    pub loc: Location,
}

/// How a durable subscription gives up on a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Durable {
    /// Deliveries of one message before it is dead-lettered.
    pub max_deliver: u32,
    /// Where a message goes once it has failed `max_deliver` times; by
    /// default `atoll.<app>.dead.<subscription index>`.
    pub dead_letter: Option<String>,
}

impl Durable {
    pub const DEFAULT_MAX_DELIVER: u32 = 5;
}

/// A value the app reads at run time, from the environment
/// (`ATOLL_VAR_<NAME>`), the runtime configuration, or its default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    pub name: String,
    pub default: Option<String>,
    pub required: bool,
    /// Never logged; readable by a function only if listed in its `secrets`.
    pub secret: bool,
    pub description: Option<String>,
    pub loc: Location,
}

impl Variable {
    /// `ATOLL_VAR_GITHUB_TOKEN` for `github_token`.
    pub fn env_name(&self) -> String {
        format!("ATOLL_VAR_{}", self.name.to_ascii_uppercase())
    }

    /// `ATOLL_APP_SHOP_VAR_GITHUB_TOKEN` for `github_token` in the app
    /// `shop`: the variable given to that app alone.
    pub fn app_env_name(&self, app: &str) -> String {
        format!("{}{}", app_env_prefix(app), self.name.to_ascii_uppercase())
    }
}

/// `ATOLL_APP_<APP>_VAR_`, the app's name upper-cased with `-` as `_`: the
/// start of the environment variables that give values to that app alone.
pub fn app_env_prefix(app: &str) -> String {
    format!("ATOLL_APP_{}_VAR_", app.to_ascii_uppercase().replace('-', "_"))
}

/// Headers the host adds to outbound requests to some hosts, with values
/// from variables: credentials a function uses without ever seeing them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAuth {
    pub hosts: Vec<HostPattern>,
    pub headers: Vec<(String, Template)>,
    pub loc: Location,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppInfo {
    pub name: String,
    pub version: String,
    pub description: Option<String>,
    /// `[app] base`: the path prefix the app is mounted at (`/` unless
    /// set; no trailing `/` otherwise). Routes match the path with it
    /// stripped.
    pub base: String,
    /// `[app] hosts`: host names (lower case) the app answers, `*.name`
    /// for any subdomain; empty: any host.
    pub hosts: Vec<String>,
}

/// The rule a function's name follows, stated in these words wherever it
/// is stated (manifest errors, `atoll new`, the README). A name is also a
/// Cargo package's and a directory's when `atoll new` makes the function:
/// Cargo refuses a leading digit, and lower case keeps two names from
/// meeting on a case-insensitive filesystem.
pub const FUNCTION_NAME_RULE: &str = "lower-case letters, digits, - and _, starting with a letter";

/// Whether `name` follows [`FUNCTION_NAME_RULE`] (in at most 64 bytes).
pub fn is_function_name(name: &str) -> bool {
    name.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && name.len() <= 64
}

#[derive(Debug, Clone)]
pub struct Function {
    pub name: String,
    /// Path of the module, relative to [`Manifest::dir`] unless absolute.
    pub source: PathBuf,
    pub source_loc: Location,
    pub abi: Abi,
    pub timeout: Duration,
    /// Upper bound on the instance's linear memory, in bytes.
    pub memory: u64,
    pub memory_loc: Location,
    /// Invocations of this function running at once, whatever started them
    /// (routes, pipeline steps, links, schedules, topics); `None`: only the
    /// server's limits apply.
    pub max_concurrency: Option<u32>,
    /// How long a call waits for one of those slots before failing with
    /// 503 (`DEFAULT_MAX_QUEUE` unless given).
    pub max_queue: Duration,
    pub capabilities: BTreeSet<Capability>,
    /// Origins outbound HTTP may reach (with the `http` capability).
    pub allowed_hosts: Vec<HostPattern>,
    /// Key-value stores it may open (with `kv`); `["default"]` unless given.
    pub kv_stores: Vec<String>,
    /// Secret variables it may read (with `vars`).
    pub secrets: Vec<String>,
    /// Topics it may publish on (with `msg`).
    pub publish_topics: Vec<TopicPattern>,
    /// Named queries it may run (with `sql`).
    pub queries: Vec<String>,
    /// Other functions of the app it may call, by the namespace its host
    /// calls use (waPC links).
    pub links: Vec<Link>,
    pub build: Option<Build>,
    /// Where `[functions.<name>]` is declared.
    pub loc: Location,
}

/// A namespace whose host calls run another function of the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// What the caller passes as `namespace` to `__host_call`.
    pub namespace: String,
    /// The function that answers it.
    pub function: String,
    pub loc: Location,
}

/// How the host talks to a function's module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Abi {
    /// The waPC protocol (`__guest_call`, host calls for capabilities).
    Wapc,
    /// A WASI command run as a CGI program: the request in its environment
    /// and stdin, the response on stdout. It makes no host calls, so of the
    /// capabilities only `log` (its stderr), `vars` (its environment) and
    /// `files` (`static/` preopened) mean anything to it.
    Wagi,
    /// A component exporting `wasi:http/incoming-handler@0.2.x`. It reaches
    /// capabilities through WASI interfaces: `wasi:http/outgoing-handler`
    /// (`http`), `wasi:keyvalue` (`kv`), `wasi:config` (`vars`),
    /// `wasi:logging` and stderr (`log`), `wasi:filesystem` (`files`).
    WasiHttp,
}

impl Abi {
    /// Capabilities a function of this ABI can use.
    pub fn usable(self, cap: Capability) -> bool {
        match self {
            Abi::Wapc => true,
            Abi::Wagi => matches!(cap, Capability::Log | Capability::Vars | Capability::Files),
            Abi::WasiHttp => matches!(
                cap,
                Capability::Log | Capability::Vars | Capability::Files | Capability::Http | Capability::Kv
            ),
        }
    }

    /// Which capabilities mean something to this ABI, for error messages.
    pub fn what_it_can_use(self) -> &'static str {
        match self {
            Abi::Wapc => "every capability",
            Abi::Wagi => {
                "a CGI program makes no host calls, so it can use only \"log\" (its stderr), \"vars\" (its environment) and \"files\" (static/)"
            }
            Abi::WasiHttp => {
                "a component reaches the host through WASI interfaces, so it can use only \"http\" (wasi:http/outgoing-handler), \"kv\" (wasi:keyvalue), \"vars\" (wasi:config), \"log\" (wasi:logging and stderr) and \"files\" (static/)"
            }
        }
    }
}

impl Abi {
    /// As spelled in atoll.toml's `abi`.
    pub fn as_str(self) -> &'static str {
        match self {
            Abi::Wapc => "wapc",
            Abi::Wagi => "wagi",
            Abi::WasiHttp => "wasi-http",
        }
    }
}

impl fmt::Display for Abi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A host capability a function may be granted. Everything not granted is denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Capability {
    /// Write to the host's structured log (`log` namespace and `__console_log`).
    Log,
    /// Key-value stores named in `kv_stores`.
    Kv,
    /// Outbound HTTP to `allowed_hosts`.
    Http,
    /// Read the app's variables (secret ones only if listed in `secrets`).
    Vars,
    /// Read the app's static files.
    Files,
    /// Publish messages on `publish_topics`.
    Msg,
    /// Run the named queries in `queries`.
    Sql,
}

impl Capability {
    pub const ALL: &'static [Capability] = &[
        Capability::Log,
        Capability::Kv,
        Capability::Http,
        Capability::Vars,
        Capability::Files,
        Capability::Msg,
        Capability::Sql,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Capability::Log => "log",
            Capability::Kv => "kv",
            Capability::Http => "http",
            Capability::Vars => "vars",
            Capability::Files => "files",
            Capability::Msg => "msg",
            Capability::Sql => "sql",
        }
    }

    pub fn from_name(name: &str) -> Option<Capability> {
        Capability::ALL.iter().copied().find(|c| c.name() == name)
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Build {
    pub command: String,
    /// Directory the command runs in, relative to the manifest's directory.
    pub workdir: Option<PathBuf>,
    /// Globs, relative to `workdir`, whose changes trigger a rebuild.
    pub watch: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Methods {
    Any,
    /// Upper-case method names, e.g. `["GET", "HEAD"]`.
    Only(Vec<String>),
}

impl Methods {
    pub fn allows(&self, method: &str) -> bool {
        match self {
            Methods::Any => true,
            Methods::Only(list) => list.iter().any(|m| m == method),
        }
    }
}

impl fmt::Display for Methods {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Methods::Any => f.write_str("ANY"),
            Methods::Only(list) => f.write_str(&list.join("|")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Route {
    /// Position in `[[routes]]`, for messages such as `routes[2]`.
    pub index: usize,
    pub methods: Methods,
    pub path: RoutePath,
    pub pipeline: Pipeline,
    /// Largest request body accepted, in bytes; `None` uses the server's default.
    pub max_body: Option<u64>,
    pub loc: Location,
}

impl Route {
    pub fn describe(&self) -> String {
        format!("{} {}", self.methods, self.path)
    }
}

impl Manifest {
    /// Reads and validates the manifest at `path`.
    pub fn load(path: &Path) -> Result<Manifest, ManifestErrors> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| SourceText::new(path, "").file_error(format!("cannot read the manifest: {e}")))?;
        Manifest::parse(&text, path)
    }

    /// Loads `atoll.toml` from a directory, or the manifest file itself.
    pub fn load_from(dir_or_file: &Path) -> Result<Manifest, ManifestErrors> {
        if dir_or_file.is_dir() {
            Manifest::load(&dir_or_file.join(crate::MANIFEST_FILE))
        } else {
            Manifest::load(dir_or_file)
        }
    }

    /// Validates manifest text; `path` is used for messages and for resolving
    /// relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Manifest, ManifestErrors> {
        crate::validate::validate(SourceText::new(path, text))
    }

    /// Absolute (or manifest-relative) path of a function's module.
    pub fn module_path(&self, function: &Function) -> PathBuf {
        self.dir.join(&function.source)
    }

    /// The app's static files: `static/` beside the manifest.
    pub fn static_dir(&self) -> PathBuf {
        self.dir.join("static")
    }

    /// `migrations/` beside the manifest: the `sql` capability's schema.
    pub fn migrations_dir(&self) -> PathBuf {
        self.dir.join("migrations")
    }
}
