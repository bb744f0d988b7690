use atoll_manifest::RuntimeConfigFile;
use std::path::PathBuf;
use std::sync::Arc;

/// Runtime settings that are not the app's business: they come from the
/// command line or the runtime configuration file.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Largest output a function may return, in bytes.
    pub max_output: usize,
    /// Backends, variable values and HTTP limits (`--runtime-config`).
    pub file: RuntimeConfigFile,
    /// Where embedded stores live; default: the file's `data_dir`, else
    /// `.atoll` beside the manifest or bundle.
    pub data_dir: Option<PathBuf>,
    /// What a bundle may unpack to.
    pub bundle_limits: atoll_bundle::Limits,
    /// With keys (`serve --trust`), only bundles signed by one of them load,
    /// and app directories not at all (nothing in them is signed).
    pub trust: Option<Arc<atoll_bundle::TrustedKeys>>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            max_output: 32 << 20,
            file: RuntimeConfigFile::default(),
            data_dir: None,
            bundle_limits: atoll_bundle::Limits::default(),
            trust: None,
        }
    }
}
