//! A CGI program for Atoll's WAGI tests, built for `wasm32-wasip1`. The
//! first argument (the query string's first item) picks what it does, so
//! one module covers every case: echo what it was given (the default), say
//! hello (the benchmark's WAGI row), set
//! a status and headers, redirect, write a malformed or missing header
//! block, exit non-zero, loop, trap, exhaust its memory, read static files.

use std::io::{Read, Write};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map(String::as_str).unwrap_or("echo");
    let mut out = std::io::stdout().lock();
    match mode {
        "hello" => write!(out, "Content-Type: text/plain\n\nHello, world!"),
        "status" => write!(
            out,
            "Status: 201 Created\r\nContent-Type: text/plain\r\nX-Wagi: yes\r\nContent-Length: 1\r\n\r\ncreated"
        ),
        "redirect" => write!(out, "Location: /elsewhere\n\n"),
        "garbage" => write!(out, "Content-Type: text/plain\nthis is not a header\n\nbody"),
        "noheader" => writeln!(out, "just a body, no headers"),
        "exit" => {
            eprintln!("giving up on purpose");
            std::process::exit(3);
        }
        "loop" => loop {
            std::hint::black_box(());
        },
        "trap" => panic!("boom on purpose"),
        "bomb" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1; 1 << 20]);
            }
        }
        "big" => {
            let n: usize = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(0);
            write!(out, "Content-Type: text/plain\n\n").unwrap();
            out.write_all(&vec![b'x'; n])
        }
        "static" => {
            write!(out, "Content-Type: text/plain\n\n").unwrap();
            match std::fs::read_to_string("static/hello.txt") {
                Ok(text) => write!(out, "static: {text}"),
                Err(e) => write!(out, "no static: {e}"),
            }
        }
        _ => echo(&mut out, &args),
    }
    .unwrap();
}

/// `Content-Type: text/plain`, then `args=a|b|c`, one `env NAME=value`
/// line per variable (sorted), and `stdin=...`; a line on stderr.
fn echo(out: &mut impl Write, args: &[String]) -> std::io::Result<()> {
    let mut stdin = String::new();
    std::io::stdin().read_to_string(&mut stdin)?;
    eprintln!("echoing {} bytes", stdin.len());
    write!(out, "Content-Type: text/plain; charset=utf-8\n\n")?;
    writeln!(out, "args={}", args.join("|"))?;
    let mut env: Vec<(String, String)> = std::env::vars().collect();
    env.sort();
    for (name, value) in env {
        writeln!(out, "env {name}={value}")?;
    }
    write!(out, "stdin={stdin}")
}
