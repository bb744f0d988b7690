//! Options several commands share.

use atoll_engine::EngineConfig;
use atoll_manifest::parse_size;
use std::path::PathBuf;

#[derive(clap::Args, Debug, Clone)]
pub struct EngineOptions {
    /// Directory for compiled modules [default: $ATOLL_CACHE_DIR or ~/.cache/atoll/modules]
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Do not read or write the compile cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Largest memory any function may be granted (e.g. 1GiB).
    #[arg(long, value_name = "SIZE", default_value = "1GiB", value_parser = parse_size)]
    pub max_memory: u64,
    /// Instances alive at once; beyond this, invocations fail fast.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub max_instances: u32,
    /// Run each function's init on every instance instead of snapshotting it at load.
    #[arg(long)]
    pub no_preinit: bool,
}

impl EngineOptions {
    pub fn engine_config(&self) -> EngineConfig {
        let defaults = EngineConfig::default();
        EngineConfig {
            cache_dir: if self.no_cache {
                None
            } else {
                self.cache_dir.clone().or(defaults.cache_dir)
            },
            max_instances: self.max_instances,
            max_memory: self.max_memory,
            preinitialize: !self.no_preinit,
            ..defaults
        }
    }
}

#[derive(clap::Args, Debug, Clone)]
pub struct RuntimeOptions {
    /// Runtime configuration: key-value backends, variable values, HTTP limits.
    #[arg(long, value_name = "FILE", env = "ATOLL_RUNTIME_CONFIG")]
    pub runtime_config: Option<PathBuf>,
    /// Directory for embedded stores [default: .atoll beside the manifest].
    #[arg(long, value_name = "DIR", env = "ATOLL_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

impl RuntimeOptions {
    /// The runtime configuration, with its file's errors printed.
    pub fn load(&self) -> anyhow::Result<atoll_runtime::RuntimeConfig> {
        let file = match &self.runtime_config {
            Some(path) => atoll_manifest::RuntimeConfigFile::load(path).map_err(|errors| {
                eprintln!("{errors}");
                crate::commands::Reported
            })?,
            None => Default::default(),
        };
        Ok(atoll_runtime::RuntimeConfig {
            file,
            data_dir: self.data_dir.clone(),
            ..Default::default()
        })
    }
}
