/// Runtime settings that are not the app's business: they come from the
/// command line or the runtime configuration file.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Largest output a function may return, in bytes.
    pub max_output: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig { max_output: 32 << 20 }
    }
}
