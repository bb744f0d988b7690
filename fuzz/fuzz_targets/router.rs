//! The HTTP router: a manifest's routes and then request lines, all from
//! the input. The input is split at the first NUL: before it, one route per
//! line (`METHOD /path`), after it, one lookup per line (`METHOD /path`).

#![no_main]

use atoll_http::{Lookup, Router};
use libfuzzer_sys::fuzz_target;
use std::fmt::Write;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (routes, lookups) = text.split_once('\0').unwrap_or((text, ""));
    let mut manifest = String::from("[app]\nname = \"fuzz\"\n[functions.f]\nsource = \"f.wasm\"\n");
    for line in routes.lines().take(64) {
        let (method, path) = line.split_once(' ').unwrap_or(("ANY", line));
        let _ = write!(
            manifest,
            "[[routes]]\nmethod = {method:?}\npath = {path:?}\nfn = \"f\"\n"
        );
    }
    // Only a manifest that validates reaches the router, as in the server.
    let Ok(manifest) = atoll_manifest::Manifest::parse(&manifest, Path::new("atoll.toml")) else {
        return;
    };
    let Ok(router) = Router::build(&manifest) else {
        return;
    };
    for line in lookups.lines().take(64) {
        let (method, path) = line.split_once(' ').unwrap_or(("GET", line));
        if let Lookup::Found { route, .. } = router.lookup(method, path) {
            assert!(route < manifest.routes.len());
        }
    }
});
