//! Parses and validates `atoll.toml`, the one file that describes an Atoll app.
//!
//! This crate knows nothing about Wasmtime, HTTP servers or capabilities'
//! backends: it turns text into a validated [`Manifest`] or into
//! [`ManifestErrors`] that name the file, line, column and key of every problem,
//! so a user can fix them all in one pass.
//!
//! ```
//! let text = r#"
//! [app]
//! name = "hello"
//!
//! [functions.echo]
//! source = "echo.wasm"
//!
//! [[routes]]
//! method = "POST"
//! path = "/echo/:name"
//! steps = [{ fn = "echo" }]
//! "#;
//! let manifest = atoll_manifest::Manifest::parse(text, "atoll.toml".as_ref()).unwrap();
//! let atoll_manifest::Step::Call(call) = &manifest.routes[0].pipeline.steps[0] else { unreachable!() };
//! assert_eq!(call.op, "handle");
//! ```

mod error;
mod hosts;
mod model;
mod mount;
mod path;
mod raw;
mod redact;
mod runtime_config;
mod sql_text;

mod template;
mod topics;
mod units;
mod validate;

pub use error::{Location, ManifestError, ManifestErrors, SourceText};
pub use hosts::{HostMatch, HostPattern};
pub use model::*;
pub use mount::{Mount, host_of};
pub use path::{RoutePath, Segment};
pub use redact::without_password;
pub use runtime_config::{AppScope, AppTables, HttpSettings, RuntimeConfigFile};
pub use sql_text::{MAX_PARAMS, SqlShape, sql_shape};
pub use template::{Template, TemplatePart};
pub use topics::{TopicPattern, check_topic};
pub use units::{MAX_DURATION, MAX_SIZE, parse_duration, parse_size};

/// The file name Atoll looks for in an app directory.
pub const MANIFEST_FILE: &str = "atoll.toml";
