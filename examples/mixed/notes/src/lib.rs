//! A `wasi:http/incoming-handler` component, built for `wasm32-wasip2`
//! with the `wasi` crate as `wasmtime serve` examples are: it knows
//! nothing of Atoll, and would run on any host that provides
//! `wasi:keyvalue`. It keeps the guestbook in the default store: a counter,
//! `count` (the number of the latest note, taken with
//! `atomics::increment`, so two notes at once never get one number), and
//! each note as JSON under `note:<number>`.
//!
//! - `POST` (after the `check` step): stores the note it is sent; 201, a
//!   `location`, and the stored note as JSON;
//! - `GET /notes/<number>`: that note, or 404;
//! - `GET` anything else: the count and the latest notes, newest first.
//!
//! A failure is answered as `{"error": ...}` with its status, so that the
//! page after it in a pipeline can show it.

use serde::Deserialize;
use serde_json::{Value, json};
use std::io::{Read as _, Write as _};
use wasi::http::types::{Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam};

wasi::http::proxy::export!(Notes);

// The WASI state interfaces, from the WIT Atoll vendors. It holds
// `wasi:keyvalue` at 0.2.0-draft (Wasmtime's and wasmCloud's) and
// 0.2.0-draft2 (Spin 3's); this example uses the first, and
// `wasi:logging`.
mod state {
    wit_bindgen::generate!({
        path: "../../../crates/atoll-wasi-http/wit",
        world: "atoll:host/state",
        generate_all,
    });
}

use state::wasi::keyvalue0_2_0_draft::{atomics, batch, store};
use state::wasi::logging::logging;

/// How many notes a listing shows.
const LATEST: u64 = 20;

/// A note as the `check` step hands it over.
#[derive(Deserialize)]
struct Note {
    author: String,
    text: String,
}

/// What to answer: a status, maybe a `location`, and a JSON body.
struct Reply {
    status: u16,
    location: Option<String>,
    body: Value,
}

impl Reply {
    fn ok(body: Value) -> Reply {
        Reply {
            status: 200,
            location: None,
            body,
        }
    }

    fn error(status: u16, message: impl Into<String>) -> Reply {
        Reply {
            status,
            location: None,
            body: json!({ "error": message.into() }),
        }
    }
}

impl From<store::Error> for Reply {
    fn from(e: store::Error) -> Reply {
        let why = match e {
            store::Error::NoSuchStore => "no such store".to_string(),
            store::Error::AccessDenied => "access denied".to_string(),
            store::Error::Other(message) => message,
        };
        Reply::error(500, format!("the guestbook's store failed: {why}"))
    }
}

struct Notes;

impl wasi::exports::http::incoming_handler::Guest for Notes {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        respond(out, answer(request).unwrap_or_else(|failure| failure));
    }
}

fn answer(request: IncomingRequest) -> Result<Reply, Reply> {
    let path = request.path_with_query().unwrap_or_default();
    let path = path.split('?').next().unwrap_or_default().to_string();
    // "default" as wasmCloud's examples open it ("" works too, as in Wasmtime's tests).
    let bucket = store::open("default")?;
    match request.method() {
        Method::Post => add(&bucket, &read_body(request)?),
        Method::Get | Method::Head => match path.strip_prefix("/notes/") {
            Some(number) => one(&bucket, number),
            None => latest(&bucket),
        },
        _ => Err(Reply::error(405, "only GET and POST")),
    }
}

fn key(number: u64) -> String {
    format!("note:{number}")
}

/// Numbers the note, stores it, and answers it with its address.
fn add(bucket: &store::Bucket, body: &[u8]) -> Result<Reply, Reply> {
    let note: Note = serde_json::from_slice(body).map_err(|e| Reply::error(400, format!("not a note: {e}")))?;
    let id = atomics::increment(bucket, "count", 1)?;
    let stored = json!({ "id": id, "author": note.author, "text": note.text });
    bucket.set(&key(id), stored.to_string().as_bytes())?;
    logging::log(
        logging::Level::Info,
        "notes",
        &format!("note {id} from {}", note.author),
    );
    Ok(Reply {
        status: 201,
        location: Some(format!("/notes/{id}")),
        body: stored,
    })
}

fn one(bucket: &store::Bucket, number: &str) -> Result<Reply, Reply> {
    let missing = || Reply::error(404, format!("no note {number}"));
    let id: u64 = number.parse().map_err(|_| missing())?;
    let stored = bucket.get(&key(id))?.ok_or_else(missing)?;
    Ok(Reply::ok(parse(&stored)?))
}

/// The count and the latest [`LATEST`] notes, newest first, in one
/// `get-many`. A number taken but not yet stored (a note being added right
/// now) is skipped.
fn latest(bucket: &store::Bucket) -> Result<Reply, Reply> {
    let count: u64 = match bucket.get("count")? {
        // Counters are decimal text, as Redis keeps them.
        Some(text) => String::from_utf8_lossy(&text).parse().unwrap_or(0),
        None => 0,
    };
    let keys: Vec<String> = (count.saturating_sub(LATEST) + 1..=count).rev().map(key).collect();
    let notes = batch::get_many(bucket, &keys)?
        .into_iter()
        .flatten()
        .map(|(_, stored)| parse(&stored))
        .collect::<Result<Vec<Value>, Reply>>()?;
    Ok(Reply::ok(json!({ "count": count, "notes": notes })))
}

fn parse(stored: &[u8]) -> Result<Value, Reply> {
    serde_json::from_slice(stored).map_err(|e| Reply::error(500, format!("a stored note is not JSON: {e}")))
}

fn read_body(request: IncomingRequest) -> Result<Vec<u8>, Reply> {
    let unreadable = |why: String| Reply::error(400, format!("cannot read the request body: {why}"));
    let incoming = request.consume().map_err(|()| unreadable("already taken".into()))?;
    let mut body = Vec::new();
    incoming
        .stream()
        .map_err(|()| unreadable("no stream".into()))?
        .read_to_end(&mut body)
        .map_err(|e| unreadable(e.to_string()))?;
    Ok(body)
}

fn respond(out: ResponseOutparam, reply: Reply) {
    let headers = Fields::new();
    let set = |name: &str, value: &str| {
        headers.append(name, value.as_bytes()).expect("a valid header");
    };
    set("content-type", "application/json");
    if let Some(location) = &reply.location {
        set("location", location);
    }
    let response = OutgoingResponse::new(headers);
    response.set_status_code(reply.status).expect("a valid status");
    let body = response.body().expect("the body, taken once");
    ResponseOutparam::set(out, Ok(response));
    let mut stream = body.write().expect("the stream, taken once");
    stream
        .write_all(reply.body.to_string().as_bytes())
        .expect("writing the body");
    stream.flush().expect("flushing the body");
    drop(stream);
    OutgoingBody::finish(body, None).expect("finishing the body");
}
