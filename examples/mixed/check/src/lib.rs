//! A waPC function written with the Atoll SDK: the first step of
//! `POST /notes`. It takes a note as JSON (`{"author": ..., "text": ...}`)
//! or from the guestbook page's form, and hands the next step (the `notes`
//! component) one shape: JSON with its white space tidied and its lengths
//! checked. A note it refuses stops the pipeline with its status, so
//! nothing is stored.

use atoll_sdk::{Error, Request, Response, Result};
use serde::{Deserialize, Serialize};

atoll_sdk::handler!(check);

/// The longest author's name, in characters.
const MAX_AUTHOR: usize = 60;
/// The longest note, in characters.
const MAX_TEXT: usize = 500;

#[derive(Default, Deserialize, Serialize)]
struct Note {
    #[serde(default)]
    author: String,
    #[serde(default)]
    text: String,
}

/// The note, tidied: a body that is not a note is a 400, a note without
/// text or with too much of it a 422. No name means "anonymous".
fn check(req: Request) -> Result<Response> {
    let note = if is_form(&req) {
        from_form(req.body())
    } else {
        req.json()?
    };
    let text = tidy(&note.text);
    let author = tidy(&note.author);
    if text.is_empty() {
        return Err(Error::status(422, "a note needs some text"));
    }
    if text.chars().count() > MAX_TEXT {
        return Err(Error::status(422, format!("a note is at most {MAX_TEXT} characters")));
    }
    if author.chars().count() > MAX_AUTHOR {
        return Err(Error::status(422, format!("a name is at most {MAX_AUTHOR} characters")));
    }
    let author = if author.is_empty() {
        "anonymous".to_string()
    } else {
        author
    };
    Response::json(&Note { author, text })
}

/// Whether the body is a form (`author=...&text=...`), as a browser posts it.
fn is_form(req: &Request) -> bool {
    req.header("content-type").is_some_and(|t| {
        t.trim()
            .to_ascii_lowercase()
            .starts_with("application/x-www-form-urlencoded")
    })
}

fn from_form(body: &[u8]) -> Note {
    let mut note = Note::default();
    for (name, value) in form_urlencoded::parse(body) {
        match &*name {
            "author" => note.author = value.into_owned(),
            "text" => note.text = value.into_owned(),
            _ => {}
        }
    }
    note
}

/// Runs of white space (line breaks included) as one space, control
/// characters dropped, nothing at either end.
fn tidy(s: &str) -> String {
    let words: Vec<&str> = s.split_whitespace().collect();
    words.join(" ").chars().filter(|c| !c.is_control()).collect()
}
