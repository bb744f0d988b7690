use crate::cache::{CachedModule, DiskCache, ModuleKey};
use crate::config::EngineConfig;
use crate::ticker::EpochTicker;
use std::sync::Arc;
use wasmtime::{Enabled, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot configure the WebAssembly engine: {0}")]
    Config(String),
    #[error("{0}")]
    Compile(String),
}

/// The Wasmtime release Atoll is built on (pinned in the workspace's
/// Cargo.toml; a test holds this to Cargo.lock).
pub const WASMTIME_VERSION: &str = "48.0.8";

/// The process's one Wasmtime engine, its compile cache and its epoch clock.
/// Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    // Declared before `wasmtime` so the ticker thread stops first.
    _ticker: EpochTicker,
    wasmtime: wasmtime::Engine,
    cache: Option<DiskCache>,
    config: EngineConfig,
    lanes: crate::Lanes,
    /// Guests still running after their response went out (a component
    /// that finishes its body and then carries on), so that a drain waits
    /// for them instead of cutting them off.
    after_response: tokio_util::task::TaskTracker,
}

impl Engine {
    pub fn new(config: EngineConfig) -> Result<Engine, EngineError> {
        let mut pool = PoolingAllocationConfig::new();
        pool.total_core_instances(config.max_instances)
            .total_memories(config.max_instances)
            .total_tables(config.max_instances)
            .total_stacks(config.max_instances)
            .total_component_instances(config.max_instances)
            .max_memory_size(config.max_memory as usize)
            // The microseconds of an invocation go to first-touch page faults
            // and resets, not to the guest's code: keep pages resident and,
            // where the kernel can tell us, reset only the dirty ones.
            .linear_memory_keep_resident(config.keep_resident)
            .table_keep_resident(64 << 10)
            .async_stack_keep_resident(64 << 10)
            .pagemap_scan(Enabled::Auto);

        let mut cfg = wasmtime::Config::new();
        cfg.allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
            .memory_init_cow(true)
            .epoch_interruption(true)
            .cranelift_opt_level(OptLevel::Speed)
            .wasm_backtrace_max_frames(std::num::NonZeroUsize::new(20));

        let wasmtime = wasmtime::Engine::new(&cfg).map_err(|e| EngineError::Config(format!("{e:#}")))?;
        let cache = match &config.cache_dir {
            Some(dir) => match DiskCache::open(dir, &wasmtime) {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "compile cache disabled: cannot use its directory");
                    None
                }
            },
            None => None,
        };
        let ticker = EpochTicker::start(&wasmtime, config.epoch_tick);
        Ok(Engine {
            inner: Arc::new(Inner {
                _ticker: ticker,
                wasmtime,
                cache,
                config,
                lanes: crate::Lanes::default(),
                after_response: tokio_util::task::TaskTracker::new(),
            }),
        })
    }

    pub fn wasmtime(&self) -> &wasmtime::Engine {
        &self.inner.wasmtime
    }

    /// Where invocations run: inline, or on the slow lane once they run long.
    pub fn lanes(&self) -> &crate::Lanes {
        &self.inner.lanes
    }

    /// Lets a guest finish what it does after its response was sent,
    /// counted until it ends (its own deadline still holds).
    pub fn finish_after_response(&self, guest: impl Future<Output = ()> + Send + 'static) {
        self.inner.after_response.spawn(guest);
    }

    /// Completes once no guest is running after its response: what a drain
    /// waits for once its connections have closed.
    pub async fn settled(&self) {
        let tracker = &self.inner.after_response;
        tracker.close();
        tracker.wait().await;
        // Closing only lets `wait` finish; the engine keeps serving.
        tracker.reopen();
    }

    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// A module prepared earlier for `key`, if the disk cache has it.
    pub fn load_cached(&self, key: &ModuleKey) -> Option<CachedModule> {
        self.inner.cache.as_ref()?.load(&self.inner.wasmtime, key)
    }

    /// Compiles `wasm` and records it in the cache under `key` with `tag`.
    pub fn compile_cached(&self, key: &ModuleKey, tag: &str, wasm: &[u8]) -> Result<wasmtime::Module, EngineError> {
        let module =
            wasmtime::Module::new(&self.inner.wasmtime, wasm).map_err(|e| EngineError::Compile(format!("{e:#}")))?;
        if let Some(cache) = &self.inner.cache {
            let stored = module
                .serialize()
                .map_err(std::io::Error::other)
                .and_then(|bytes| cache.store(key, tag, &bytes));
            if let Err(e) = stored {
                tracing::warn!(error = %e, "could not write the compile cache");
            }
        }
        Ok(module)
    }

    /// A component, from the disk cache if it has it under `key`, else
    /// compiled (CPU-bound: call it off the async workers) and recorded.
    pub fn component_cached(
        &self,
        key: &ModuleKey,
        wasm: &[u8],
    ) -> Result<wasmtime::component::Component, EngineError> {
        let cache = self.inner.cache.as_ref();
        if let Some(component) = cache.and_then(|c| c.load_component(&self.inner.wasmtime, key)) {
            return Ok(component);
        }
        let component = wasmtime::component::Component::new(&self.inner.wasmtime, wasm)
            .map_err(|e| EngineError::Compile(format!("{e:#}")))?;
        if let Some(cache) = cache {
            let stored = component
                .serialize()
                .map_err(std::io::Error::other)
                .and_then(|bytes| cache.store(key, "component", &bytes));
            if let Err(e) = stored {
                tracing::warn!(error = %e, "could not write the compile cache");
            }
        }
        Ok(component)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_wasmtime_version_is_the_one_in_cargo_lock() {
        let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.lock")).unwrap();
        let locked = lock
            .split("[[package]]")
            .find(|p| p.contains("\nname = \"wasmtime\"\n"))
            .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = \"")))
            .map(|v| v.trim_end_matches('"'));
        assert_eq!(locked, Some(super::WASMTIME_VERSION));
    }
}
