//! The validated manifest: what the rest of Atoll builds on.

use crate::error::{ManifestErrors, SourceText};
use crate::{HostPattern, Location, RoutePath, Template};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_MEMORY: u64 = 64 << 20;
/// One WebAssembly page: no module can run in less.
pub const MIN_MEMORY: u64 = 64 << 10;
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

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
    pub capabilities: BTreeSet<Capability>,
    /// Origins outbound HTTP may reach (with the `http` capability).
    pub allowed_hosts: Vec<HostPattern>,
    /// Key-value stores it may open (with `kv`); `["default"]` unless given.
    pub kv_stores: Vec<String>,
    /// Secret variables it may read (with `vars`).
    pub secrets: Vec<String>,
    pub build: Option<Build>,
    /// Where `[functions.<name>]` is declared.
    pub loc: Location,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Abi {
    Wapc,
}

impl fmt::Display for Abi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Abi::Wapc => "wapc",
        })
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
}

impl Capability {
    pub const ALL: &'static [Capability] = &[
        Capability::Log,
        Capability::Kv,
        Capability::Http,
        Capability::Vars,
        Capability::Files,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Capability::Log => "log",
            Capability::Kv => "kv",
            Capability::Http => "http",
            Capability::Vars => "vars",
            Capability::Files => "files",
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
    pub steps: Vec<Step>,
    /// Largest request body accepted, in bytes; `None` uses the server's default.
    pub max_body: Option<u64>,
    pub loc: Location,
}

impl Route {
    pub fn describe(&self) -> String {
        format!("{} {}", self.methods, self.path)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub function: String,
    pub op: String,
    pub loc: Location,
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
}
