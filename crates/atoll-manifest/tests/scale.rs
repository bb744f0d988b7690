//! Large manifests, each shaped to hit one place where validation used to
//! take time proportional to the square of the manifest: locating every span
//! from the start of the text, looking functions up in a list, state keys in
//! a pipeline of thousands of steps, columns on one enormous line, and error
//! messages that listed every function. They assert only results; how fast
//! they run is measured by `examples/many_routes.rs`, and a return of the
//! quadratic shows up here as a test that takes minutes instead of moments.

use atoll_manifest::{Manifest, ManifestErrors};
use std::path::Path;

const N: usize = 10_000;

fn parse(text: &str) -> Result<Manifest, ManifestErrors> {
    Manifest::parse(text, Path::new("atoll.toml"))
}

fn function(name: &str) -> String {
    format!("[functions.{name}]\nsource = \"{name}.wasm\"\ntimeout = \"2s\"\nmemory = \"16MiB\"\n\n")
}

#[test]
fn ten_thousand_routes_validate() {
    let mut text = String::from("[app]\nname = \"big\"\n\n");
    for f in 0..10 {
        text += &function(&format!("f{f}"));
    }
    for r in 0..N {
        text += &format!(
            "[[routes]]\nmethod = [\"GET\", \"POST\"]\npath = \"/api/v1/items{r}/:id/*rest\"\nmax_body = \"1MiB\"\nsteps = [{{ fn = \"f{}\", as = \"a\" }}, {{ fn = \"f{}\", input = \"a\" }}]\n\n",
            r % 10,
            (r + 1) % 10
        );
    }
    let m = parse(&text).unwrap();
    assert_eq!(m.routes.len(), N);
    assert_eq!(m.routes[N - 1].loc.line, text.lines().count() - 3);
}

#[test]
fn ten_thousand_functions_each_with_a_route() {
    let mut text = String::from("[app]\nname = \"wide\"\n\n");
    for f in 0..N {
        text += &function(&format!("f{f}"));
        text += &format!("[[routes]]\npath = \"/f{f}\"\nfn = \"f{f}\"\n\n");
    }
    let m = parse(&text).unwrap();
    assert_eq!((m.functions.len(), m.routes.len()), (N, N));
}

#[test]
fn a_pipeline_of_ten_thousand_steps() {
    let mut text = String::from("[app]\nname = \"long\"\n\n");
    text += &function("f");
    text += "[[routes]]\npath = \"/chain\"\nsteps = [\n  { fn = \"f\", as = \"s0\" },\n";
    for s in 1..N {
        text += &format!("  {{ fn = \"f\", as = \"s{s}\", input = \"s{}\" }},\n", s - 1);
    }
    text += "]\nresponse = \"s0\"\n";
    let m = parse(&text).unwrap();
    assert_eq!(m.routes[0].pipeline.steps.len(), N);
}

#[test]
fn ten_thousand_routes_on_one_line_with_accents() {
    let mut text = String::from("app = { name = \"one-line\", description = \"café\" }\n");
    text += "functions = { f = { source = \"f.wasm\" } }\nroutes = [";
    for r in 0..N {
        text += &format!("{{ path = \"/é{r}\", fn = \"f\" }}, ");
    }
    text += "]\n";
    let m = parse(&text).unwrap();
    assert_eq!(m.routes.len(), N);
    assert_eq!(m.routes[N - 1].loc.line, 3);
    let column = text
        .lines()
        .nth(2)
        .unwrap()
        .split("\"/é9999\"")
        .next()
        .unwrap()
        .chars()
        .count()
        + 1;
    assert_eq!(m.routes[N - 1].loc.column, column);
}

#[test]
fn ten_thousand_errors_on_one_line_stay_readable() {
    let mut text = String::from("app = { name = \"errors\" }\nfunctions = { ");
    for f in 0..100 {
        text += &format!("f{f} = {{ source = \"f.wasm\" }}, ");
    }
    text += "}\nroutes = [";
    for r in 0..N {
        text += &format!("{{ path = \"/r{r}\", fn = \"missing{r}\" }}, ");
    }
    text += "]\n";
    let errors = parse(&text).unwrap_err();
    assert_eq!(errors.0.len(), N);
    let last = errors.0[N - 1].to_string();
    // The message names a few functions, and the line is shown around the
    // span, not whole: each error stays the size of one error.
    assert!(last.contains("declared functions: f0, f1, f10, f11, f12,"), "{last}");
    assert!(last.contains(" and 90 more)"), "{last}");
    assert!(last.len() < 600, "{last}");
    assert!(last.contains("\"missing9999\""), "{last}");
}
