//! The runtime configuration file (`--config`): any text gives a
//! configuration or errors that render, never a panic or a hang.

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(errors) = atoll_manifest::RuntimeConfigFile::parse(text, Path::new("atoll-runtime.toml")) {
        assert!(!errors.to_string().is_empty());
    }
});
