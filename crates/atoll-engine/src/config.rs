use std::path::PathBuf;
use std::time::Duration;

/// Process-wide engine settings. These come from the runtime configuration
/// (flags, environment), never from an app's manifest.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Where compiled modules are cached; `None` disables the disk cache.
    pub cache_dir: Option<PathBuf>,
    /// Instances alive at once across all functions. Invocations beyond this
    /// fail fast with "at capacity" instead of queueing without bound.
    pub max_instances: u32,
    /// The largest linear memory any function may be granted, in bytes. A
    /// manifest asking for more is refused at load.
    pub max_memory: u64,
    /// Granularity of deadlines and of the yields that keep a busy guest from
    /// starving others on the same worker thread.
    pub epoch_tick: Duration,
    /// Pre-initialise modules with Wizer at load time.
    pub preinitialize: bool,
    /// Bytes of each linear memory kept resident between instances.
    pub keep_resident: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            cache_dir: default_cache_dir(),
            max_instances: 1000,
            max_memory: 1 << 30,
            epoch_tick: Duration::from_millis(2),
            preinitialize: true,
            keep_resident: 2 << 20,
        }
    }
}

/// `$ATOLL_CACHE_DIR`, else `$XDG_CACHE_HOME/atoll/modules`, else
/// `~/.cache/atoll/modules`.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("ATOLL_CACHE_DIR") {
        return Some(PathBuf::from(dir));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("atoll").join("modules"))
}
