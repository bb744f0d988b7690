//! A CGI program, as WAGI and Spin's `wagi` executor run them: it knows
//! nothing of Atoll, nor of the component before it in the pipeline. It
//! reads the JSON the `notes` component answered on stdin and writes the
//! guestbook as HTML:
//!
//! - after `POST /notes`: thanks the author for the note just stored;
//! - after `GET /`: the count, the latest notes and a form to sign.
//!
//! An `{"error": ...}` from the component is shown as it is. The program
//! writes no `Status`, so the component's (201 for a stored note, or its
//! error's) is the response's.

use serde_json::{Value, json};
use std::io::Read;

fn main() {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).expect("stdin");
    let data: Value = serde_json::from_str(&input)
        .unwrap_or_else(|e| json!({ "error": format!("the notes step answered something other than JSON: {e}") }));
    let (title, main) = if let Some(error) = data["error"].as_str() {
        ("Something went wrong", format!("<p>{}</p>\n", escape(error)))
    } else if std::env::var("REQUEST_METHOD").as_deref() == Ok("POST") {
        ("Thank you", thanks(&data))
    } else {
        ("Guestbook", book(&data))
    };
    print!(
        "Content-Type: text/html; charset=utf-8\n\n<!doctype html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>{title}</title></head>\n<body>\n<h1>{title}</h1>\n{main}</body>\n</html>\n"
    );
}

/// The note just stored: `{"id", "author", "text"}`.
fn thanks(note: &Value) -> String {
    format!(
        "<p>Thanks, {}! Yours is note number {}.</p>\n<blockquote>{}</blockquote>\n<p><a href=\"/\">Back to the guestbook</a></p>\n",
        text(note, "author"),
        note["id"],
        text(note, "text"),
    )
}

/// The latest notes: `{"count", "notes": [...]}`, then the form.
fn book(data: &Value) -> String {
    let mut html = match data["count"].as_u64().unwrap_or(0) {
        0 => "<p>No notes yet: be the first.</p>\n".to_string(),
        1 => "<p>1 note so far.</p>\n".to_string(),
        n => format!("<p>{n} notes so far, the latest first.</p>\n"),
    };
    let notes = data["notes"].as_array().map(Vec::as_slice).unwrap_or_default();
    if !notes.is_empty() {
        html += "<ul>\n";
        for note in notes {
            html += &format!(
                "<li>#{} <b>{}</b>: {}</li>\n",
                note["id"],
                text(note, "author"),
                text(note, "text")
            );
        }
        html += "</ul>\n";
    }
    html += concat!(
        "<form method=\"post\" action=\"/notes\">\n",
        "<p><label>Name <input name=\"author\" maxlength=\"60\"></label></p>\n",
        "<p><label>Note <textarea name=\"text\" maxlength=\"500\" required></textarea></label></p>\n",
        "<p><button>Sign the guestbook</button></p>\n",
        "</form>\n",
    );
    html
}

/// A string field, escaped for HTML.
fn text(value: &Value, field: &str) -> String {
    escape(value[field].as_str().unwrap_or_default())
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
