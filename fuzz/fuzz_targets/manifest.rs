//! `atoll.toml` from anyone: parsing and validating any text must give a
//! manifest or errors that render, never a panic or a hang.

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match atoll_manifest::Manifest::parse(text, Path::new("atoll.toml")) {
        Ok(manifest) => {
            for route in &manifest.routes {
                let _ = route.describe();
                let _ = route.path.to_matchit();
            }
        }
        // Rendering is part of the contract: errors quote the source with a caret.
        Err(errors) => assert!(!errors.to_string().is_empty()),
    }
});
