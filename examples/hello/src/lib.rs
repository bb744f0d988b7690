//! The hello example: three operations of one function, written with the
//! Atoll Rust SDK.

use atoll_sdk::{Request, Response, Result, log};
use serde::Serialize;

atoll_sdk::handlers! {
    "handle" => hello,
    "echo" => echo,
    "whoami" => whoami,
}

/// `GET /hello/:name` (and `GET /`): a greeting, in the language asked for.
fn hello(req: Request) -> Result<Response> {
    let name = req.param("name").unwrap_or("world");
    let greeting = match req.query_param("lang").as_deref() {
        Some("fr") => "Bonjour",
        Some("es") => "Hola",
        _ => "Hello",
    };
    log::info(format!("greeting {name}"));
    Ok(Response::text(format!("{greeting}, {name}!\n")).header("x-greeted", name))
}

/// `POST /echo`: the body back, with its size in a header.
fn echo(req: Request) -> Result<Response> {
    let size = req.body().len().to_string();
    Ok(Response::new(req.into_body()).header("x-body-size", &size))
}

#[derive(Serialize)]
struct WhoAmI<'a> {
    method: &'a str,
    path: &'a str,
    rest: Option<&'a str>,
    user_agent: Option<String>,
}

/// `GET /whoami/*rest`: what the function sees of the request, as JSON.
fn whoami(req: Request) -> Result<Response> {
    Response::json(&WhoAmI {
        method: req.method(),
        path: req.path(),
        rest: req.param("rest"),
        user_agent: req.header("user-agent"),
    })
}
