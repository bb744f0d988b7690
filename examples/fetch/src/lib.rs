//! Talks to the GitHub API. The token is added by the host (see
//! `[[http_auth]]` in atoll.toml); this code never has it.

use atoll_sdk::http::Request as Outbound;
use atoll_sdk::{Error, Request, Response, Result, vars};
use serde::Deserialize;

atoll_sdk::handlers! {
    "handle" => zen,
    "me" => me,
}

fn api(path: &str) -> Result<String> {
    Ok(format!("{}{path}", vars::require("api_base")?))
}

/// `GET /zen`: a line of GitHub wisdom.
fn zen(_: Request) -> Result<Response> {
    let resp = Outbound::get(&api("/zen")?)
        .header("accept", "text/plain")
        .send()
        .map_err(|e| Error::status(502, e.message()))?;
    if !resp.is_success() {
        return Err(Error::status(502, format!("the API answered {}", resp.status)));
    }
    Ok(Response::text(resp.text()?))
}

#[derive(Deserialize)]
struct User {
    login: String,
}

/// `GET /me`: the login of the token's owner.
fn me(_: Request) -> Result<Response> {
    let resp = Outbound::get(&api("/user")?)
        .header("accept", "application/json")
        .send()
        .map_err(|e| Error::status(502, e.message()))?;
    if resp.status == 401 {
        return Err(Error::status(502, "the API refused the token"));
    }
    let user: User = resp.json()?;
    Ok(Response::text(format!("{}\n", user.login)))
}
