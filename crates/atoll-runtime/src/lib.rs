//! Loads an Atoll app and runs its pipelines: the layer every trigger
//! (HTTP, schedule, topic) calls, and the only one that knows both the
//! manifest and the engine.
//!
//! Data flows one way: trigger → [`App::run`] → ABI adapter (fresh instance)
//! → capability layer → backend. Instances are torn down on a background
//! thread ([`Reaper`]) so resetting their memory never delays a response.

mod app;
mod config;
mod failure;
mod pipeline;
mod reaper;
mod request_id;

pub use app::{App, LoadedFunction};
pub use config::RuntimeConfig;
pub use failure::StepFailure;
pub use pipeline::{Outcome, Trigger};
pub use reaper::Reaper;
pub use request_id::new_request_id;

pub use atoll_caps::RequestInfo;
pub use atoll_engine::{Engine, EngineConfig};
pub use atoll_manifest::{Manifest, ManifestErrors};
