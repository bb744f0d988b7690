//! A waPC function that tidies a name before the CGI program sees it: the
//! first step of `POST /sign`. Its output is the next step's stdin.

use atoll_sdk::{Error, Request, Response, Result};

atoll_sdk::handler!(tidy);

/// Collapses white space and capitalises each word; an empty name is a 400.
fn tidy(req: Request) -> Result<Response> {
    let words: Vec<String> = req
        .text()?
        .split_whitespace()
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c.flat_map(char::to_lowercase)).collect())
                .unwrap_or_default()
        })
        .collect();
    if words.is_empty() {
        return Err(Error::status(400, "send a name to sign with"));
    }
    Ok(Response::text(words.join(" ")))
}
