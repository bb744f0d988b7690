//! Exercises the SDK end to end: request metadata, response status and
//! headers, logging, errors with status codes, panics and stdout.

use atoll_sdk::{Error, Request, Response, Result, log};
use serde::Serialize;

atoll_sdk::handlers! {
    "handle" => inspect,
    "greet" => greet,
    "not_found" => not_found,
    "panic" => panic,
    "print" => print,
}

#[derive(Serialize)]
struct Seen<'a> {
    method: &'a str,
    path: &'a str,
    name: Option<&'a str>,
    rest: Option<&'a str>,
    q: Option<String>,
    query: &'a str,
    agent: Option<String>,
    body: &'a str,
}

/// Echoes back everything it can see of the request, as JSON.
fn inspect(req: Request) -> Result<Response> {
    let seen = Seen {
        method: req.method(),
        path: req.path(),
        name: req.param("name"),
        rest: req.param("rest"),
        q: req.query_param("q"),
        query: req.query(),
        agent: req.header("x-agent"),
        body: req.text()?,
    };
    Response::json(&seen).map(|r| r.status(201).header("x-fixture", "sdk"))
}

fn greet(req: Request) -> Result<String> {
    let name = req.param("name").unwrap_or("world").to_string();
    log::info(format!("greeting {name}"));
    Ok(format!("Hello, {name}!"))
}

fn not_found(req: Request) -> Result<Response> {
    Err(Error::status(404, format!("nothing at {}", req.path())))
}

fn panic(_: Request) -> Result<Response> {
    panic!("the sdk fixture panics on purpose")
}

fn print(_: Request) -> Result<&'static str> {
    println!("printed to stdout");
    eprintln!("printed to stderr");
    Ok("printed")
}
