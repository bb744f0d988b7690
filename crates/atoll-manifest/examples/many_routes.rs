//! Times parsing and validating generated manifests of growing size, so a
//! return to quadratic validation shows up as a number rather than as a slow
//! `atoll check`:
//!
//! ```text
//! cargo run --release -p atoll-manifest --example many_routes -- 1000 2000 4000 8000 10000
//! ```
//!
//! Each size is tried in four shapes: many routes over a few functions, one
//! function per route, one route with that many steps, and many routes
//! written on a single line (with accents, so columns are counted in
//! characters, not bytes). `tests/scale.rs` checks the same shapes load.

use std::path::Path;
use std::time::Instant;

/// Makes a manifest of size `n` in one shape.
type Generator = fn(usize) -> String;

fn function(name: &str) -> String {
    format!("[functions.{name}]\nsource = \"{name}.wasm\"\ntimeout = \"2s\"\n\n")
}

/// `n` routes spread over ten functions, each with its own path and a
/// two-step pipeline, the way a large generated API would look.
fn routes(n: usize) -> String {
    let mut text = String::from("[app]\nname = \"big\"\n\n");
    for f in 0..10 {
        text += &function(&format!("f{f}"));
    }
    for r in 0..n {
        text += &format!(
            "[[routes]]\nmethod = [\"GET\", \"POST\"]\npath = \"/api/v1/items{r}/:id/*rest\"\nmax_body = \"1MiB\"\nsteps = [{{ fn = \"f{}\", as = \"a\" }}, {{ fn = \"f{}\", input = \"a\" }}]\n\n",
            r % 10,
            (r + 1) % 10
        );
    }
    text
}

fn functions(n: usize) -> String {
    let mut text = String::from("[app]\nname = \"wide\"\n\n");
    for f in 0..n {
        text += &function(&format!("f{f}"));
        text += &format!("[[routes]]\npath = \"/f{f}\"\nfn = \"f{f}\"\n\n");
    }
    text
}

fn steps(n: usize) -> String {
    let mut text = String::from("[app]\nname = \"long\"\n\n");
    text += &function("f");
    text += "[[routes]]\npath = \"/chain\"\nsteps = [\n  { fn = \"f\", as = \"s0\" },\n";
    for s in 1..n {
        text += &format!("  {{ fn = \"f\", as = \"s{s}\", input = \"s{}\" }},\n", s - 1);
    }
    text + "]\n"
}

fn one_line(n: usize) -> String {
    let mut text = String::from("app = { name = \"one-line\", description = \"café\" }\n");
    text += "functions = { f = { source = \"f.wasm\" } }\nroutes = [";
    for r in 0..n {
        text += &format!("{{ path = \"/é{r}\", fn = \"f\" }}, ");
    }
    text + "]\n"
}

fn main() {
    let mut sizes: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    if sizes.is_empty() {
        sizes = vec![1000, 2000, 4000, 8000, 10_000];
    }
    let shapes: [(&str, Generator); 4] = [
        ("routes", routes),
        ("functions", functions),
        ("steps", steps),
        ("one-line", one_line),
    ];
    println!("{:>10} {:>7} {:>9} {:>10}", "shape", "n", "bytes", "ms");
    for (name, make) in shapes {
        for &n in &sizes {
            let text = make(n);
            let started = Instant::now();
            let result = atoll_manifest::Manifest::parse(&text, Path::new("atoll.toml"));
            let elapsed = started.elapsed();
            if let Err(e) = result {
                panic!("the generated {name} manifest is invalid: {e}");
            }
            println!(
                "{name:>10} {n:>7} {:>9} {:>10.1}",
                text.len(),
                elapsed.as_secs_f64() * 1e3
            );
        }
    }
}
