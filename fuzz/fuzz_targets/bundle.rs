//! `.atoll` bundles come from outside (`atoll serve app.atoll`, `PUT
//! /-/bundle`): any bytes are read as a checked bundle or refused with an
//! error, within the size limits, never a panic.

#![no_main]

use atoll_bundle::{Bundle, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Small limits keep each run fast; the checks are the same at any size.
    let limits = Limits {
        max_total: 4 << 20,
        max_entries: 256,
    };
    match Bundle::read(data, &limits) {
        Ok(bundle) => {
            let _ = bundle.manifest_text();
            let _ = bundle.entries().count();
            let _ = bundle.static_files();
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
