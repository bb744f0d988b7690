//! Counts visits in the `default` key-value store and serves `static/index.html`
//! with the count filled in.

use atoll_sdk::{Error, Request, Response, Result, files, kv, log};

atoll_sdk::handlers! {
    "handle" => page,
    "count" => count,
    "reset" => reset,
}

/// `GET /`: one more visit, and the page that says so.
fn page(_: Request) -> Result<Response> {
    let visits = kv::increment("visits", 1)?;
    let template =
        files::read_to_string("index.html")?.ok_or_else(|| Error::status(500, "static/index.html is missing"))?;
    log::info(format!("visit {visits}"));
    Ok(Response::new(template.replace("{{visits}}", &visits.to_string()))
        .header("content-type", "text/html; charset=utf-8"))
}

/// `GET /count`: the count, as JSON, without counting.
fn count(_: Request) -> Result<Response> {
    let visits: i64 = kv::get_string("visits")?.and_then(|v| v.parse().ok()).unwrap_or(0);
    Response::json(&std::collections::BTreeMap::from([("visits", visits)]))
}

/// `POST /reset`
fn reset(_: Request) -> Result<Response> {
    kv::delete("visits")?;
    Ok(Response::new("").status(204))
}
