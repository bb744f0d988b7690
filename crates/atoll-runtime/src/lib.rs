//! Loads an Atoll app and runs its pipelines: the layer every trigger
//! (HTTP, schedule, topic) calls, and the only one that knows both the
//! manifest and the engine.
//!
//! Data flows one way: trigger → [`App::run`] → ABI adapter (fresh instance)
//! → capability layer → backend. Spent instances come back with the
//! [`Outcome`] so the trigger can tear them down after its response is on
//! its way: resetting memory is work no client should wait for.

mod app;
mod config;
mod direct;
mod failure;
mod guest;
mod load;
mod pipeline;
mod request_id;
mod slots;
mod source;

pub use app::{App, LoadedFunction};
pub use config::RuntimeConfig;
pub use failure::StepFailure;
pub use guest::{Guest, Teardown};
pub use pipeline::{Outcome, Spent, Trigger};
pub use request_id::new_request_id;
pub use slots::{Slot, SlotStats};
pub use source::AppSource;

pub use atoll_caps::{RequestInfo, State, TriggerKind};
pub use atoll_engine::{Engine, EngineConfig};
pub use atoll_manifest::{Manifest, ManifestErrors, RuntimeConfigFile};
pub use atoll_wasi_http::{BoxError, StreamedBody, Streaming};
