//! A `wasi:http/incoming-handler` component for Atoll's tests, built for
//! `wasm32-wasip2` with the `wasi` crate exactly as `wasmtime serve`
//! examples are. The request path picks what it does, so one component
//! covers every case: say hello (the default, and the benchmark's row),
//! echo the request body back while streaming it, report what it was
//! given, fetch a URL through `outgoing-handler`, relay
//! pieces through an echoing upstream in both directions at once, write a large body,
//! set a status and headers, loop, trap, or exhaust its memory; and use
//! `wasi:keyvalue` (0.2.0-draft, and 0.2.0-draft2 as Spin 3 components
//! do), `wasi:config` and `wasi:logging`.

use std::io::{Read as _, Write as _};
use wasi::http::outgoing_handler;
use wasi::http::types::{
    Fields, FutureIncomingResponse, IncomingRequest, IncomingResponse, Method, OutgoingBody, OutgoingRequest,
    OutgoingResponse, ResponseOutparam, Scheme,
};

wasi::http::proxy::export!(Component);

// The WASI state interfaces Atoll provides, from the WIT it vendors.
mod state {
    wit_bindgen::generate!({
        path: "../../../crates/atoll-wasi-http/wit",
        world: "atoll:host/state",
        generate_all,
    });
}

use state::wasi::config0_2_0_draft::runtime as config_runtime;
use state::wasi::config0_2_0_draft::store as config;
use state::wasi::config0_2_0_draft_2024_09_27::store as config_dated;
use state::wasi::config0_2_0_rc_1::store as config_rc;
use state::wasi::keyvalue0_2_0_draft::{atomics, batch, store as kv};
use state::wasi::keyvalue0_2_0_draft2::{atomics as atomics2, batch as batch2, store as kv2};
use state::wasi::logging::logging;

struct Component;

impl wasi::exports::http::incoming_handler::Guest for Component {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let (path, query) = path.split_once('?').unwrap_or((&path, ""));
        // A schedule or a message: say what it looked like.
        if !request.headers().get("x-atoll-trigger").is_empty() {
            return info(request, out);
        }
        match path.rsplit('/').next().unwrap_or("") {
            "echo" => echo(request, out),
            "trailers" => trailers(request, out),
            "info" => info(request, out),
            "fetch" => fetch(query, out),
            "relay" => match relay(query, 40) {
                Ok(echoed) => respond(out, 200, &[], &echoed),
                Err(e) => respond(out, 502, &[], format!("relay failed: {e}").as_bytes()),
            },
            "big" => big(query.parse().unwrap_or(0), out),
            "status" => respond(
                out,
                201,
                &[("x-component", "yes"), ("content-type", "text/plain")],
                b"created",
            ),
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
            "noresponse" => drop(out),
            "visit" => {
                let text = match visit(query) {
                    Ok(n) => n.to_string(),
                    Err(e) => format!("kv failed: {e:?}"),
                };
                respond(out, 200, &[], text.as_bytes())
            }
            "kv" => {
                let text = kv_tour().unwrap_or_else(|e| format!("kv failed: {e:?}"));
                respond(out, 200, &[], text.as_bytes())
            }
            "visit2" => {
                let text = match visit2(query) {
                    Ok(n) => n.to_string(),
                    Err(e) => format!("kv failed: {e:?}"),
                };
                respond(out, 200, &[], text.as_bytes())
            }
            "kv2" => {
                let text = kv2_tour().unwrap_or_else(|e| format!("kv failed: {e:?}"));
                respond(out, 200, &[], text.as_bytes())
            }
            "cas2" => {
                let text = cas2(query).unwrap_or_else(|e| format!("kv failed: {e:?}"));
                respond(out, 200, &[], text.as_bytes())
            }
            "config" => {
                let text = match config::get(query) {
                    Ok(Some(v)) => format!("{query}={v}"),
                    Ok(None) => format!("{query} is not set"),
                    Err(e) => format!("config failed: {e:?}"),
                };
                let all = config::get_all().map(|a| a.len()).unwrap_or(0);
                respond(out, 200, &[], format!("{text}\nvisible={all}").as_bytes())
            }
            // The same variable through the interface's other names.
            "config-runtime" => respond(out, 200, &[], format!("{:?}", config_runtime::get(query)).as_bytes()),
            "config-dated" => respond(out, 200, &[], format!("{:?}", config_dated::get(query)).as_bytes()),
            "config-rc" => respond(out, 200, &[], format!("{:?}", config_rc::get(query)).as_bytes()),
            "log" => {
                logging::log(logging::Level::Warn, "tests", "hello from wasi:logging");
                eprintln!("hello from stderr");
                respond(out, 200, &[], b"logged")
            }
            // Work after the response (as a component flushing a cache or
            // writing an audit record would): sleeps for `query` ms once the
            // body is finished, then writes to stderr.
            "later" => {
                respond(out, 200, &[], b"sent");
                std::thread::sleep(std::time::Duration::from_millis(query.parse().unwrap_or(0)));
                eprintln!("finished after the response");
            }
            _ => respond(out, 200, &[("content-type", "text/plain")], b"Hello from a component!"),
        }
    }
}

fn respond(out: ResponseOutparam, status: u16, headers: &[(&str, &str)], body: &[u8]) {
    let fields = Fields::new();
    for (name, value) in headers {
        fields.append(name, value.as_bytes()).unwrap();
    }
    let response = OutgoingResponse::new(fields);
    response.set_status_code(status).unwrap();
    let outgoing = response.body().unwrap();
    ResponseOutparam::set(out, Ok(response));
    let mut stream = outgoing.write().unwrap();
    stream.write_all(body).unwrap();
    stream.flush().unwrap();
    drop(stream);
    OutgoingBody::finish(outgoing, None).unwrap();
}

/// Streams the request body back in 64 KiB pieces, so a body far larger
/// than the component's memory passes through it.
fn echo(request: IncomingRequest, out: ResponseOutparam) {
    let incoming = request.consume().unwrap();
    let mut input = incoming.stream().unwrap();
    let response = OutgoingResponse::new(Fields::new());
    let outgoing = response.body().unwrap();
    ResponseOutparam::set(out, Ok(response));
    let mut output = outgoing.write().unwrap();
    let mut buf = vec![0; 64 << 10];
    loop {
        let n = std::io::Read::read(&mut input, &mut buf).unwrap();
        if n == 0 {
            break;
        }
        output.write_all(&buf[..n]).unwrap();
    }
    output.flush().unwrap();
    drop(output);
    drop(input);
    OutgoingBody::finish(outgoing, None).unwrap();
}

/// What the component was given: method, authority, path, each header,
/// the size of the body, the environment and the preopened directories.
fn info(request: IncomingRequest, out: ResponseOutparam) {
    let mut text = String::new();
    let method = match request.method() {
        Method::Get => "GET".to_string(),
        Method::Post => "POST".to_string(),
        Method::Put => "PUT".to_string(),
        Method::Other(m) => m,
        other => format!("{other:?}"),
    };
    text += &format!("method={method}\n");
    text += &format!("authority={}\n", request.authority().unwrap_or_default());
    text += &format!("path={}\n", request.path_with_query().unwrap_or_default());
    for (name, value) in request.headers().entries() {
        text += &format!("header {name}={}\n", String::from_utf8_lossy(&value));
    }
    let mut body = Vec::new();
    let incoming = request.consume().unwrap();
    incoming.stream().unwrap().read_to_end(&mut body).unwrap();
    text += &format!("body={}\n", body.len());
    text += &format!("env={}\n", std::env::vars().count());
    text += &format!("args={}\n", std::env::args().count());
    let root = std::fs::read_dir("/").map(|d| d.count()).unwrap_or(0);
    text += &format!("root entries={root}\n");
    let file = std::fs::read_to_string("/static/hello.txt").unwrap_or_else(|e| format!("none ({e})"));
    text += &format!("static={}\n", file.trim());
    respond(out, 200, &[("content-type", "text/plain")], text.as_bytes());
}

/// `?url` (percent-encoding not needed by the tests): a GET through
/// `outgoing-handler`; the upstream's status and body, or the error as a
/// 502.
fn fetch(url: &str, out: ResponseOutparam) {
    match get(url) {
        Ok((status, body)) => {
            let mut text = format!("upstream {status}: ").into_bytes();
            text.extend(body);
            respond(out, 200, &[], &text)
        }
        Err(e) => respond(out, 502, &[], format!("fetch failed: {e}").as_bytes()),
    }
}

fn get(url: &str) -> Result<(u16, Vec<u8>), String> {
    let future = outgoing_handler::handle(request_to(url)?, None).map_err(|e| format!("{e:?}"))?;
    let response = wait_for(future)?;
    let status = response.status();
    let mut body = Vec::new();
    let incoming = response.consume().unwrap();
    incoming
        .stream()
        .unwrap()
        .read_to_end(&mut body)
        .map_err(|e| e.to_string())?;
    Ok((status, body))
}

fn request_to(url: &str) -> Result<OutgoingRequest, String> {
    let (scheme, rest) = url.split_once("://").ok_or("no scheme")?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let request = OutgoingRequest::new(Fields::new());
    request
        .set_scheme(Some(&if scheme == "https" { Scheme::Https } else { Scheme::Http }))
        .unwrap();
    request.set_authority(Some(authority)).unwrap();
    request
        .set_path_with_query(Some(if path.is_empty() { "/" } else { path }))
        .unwrap();
    Ok(request)
}

fn wait_for(future: FutureIncomingResponse) -> Result<IncomingResponse, String> {
    loop {
        if let Some(r) = future.get() {
            return r.unwrap().map_err(|e| format!("{e:?}"));
        }
        future.subscribe().block();
    }
}

/// Talks to an echoing upstream in both directions at once: sends one
/// piece, waits for the upstream's response head while the request body
/// is still open, then sends each next piece only after the previous one
/// has come back. A host that gathers the request body before sending
/// never answers, so the function times out.
fn relay(url: &str, rounds: usize) -> Result<Vec<u8>, String> {
    let request = request_to(url)?;
    request.set_method(&Method::Post).unwrap();
    let body = request.body().unwrap();
    let mut sink = body.write().unwrap();
    let future = outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
    let piece = |i: usize| format!("piece {i};");
    sink.write_all(piece(0).as_bytes()).map_err(|e| e.to_string())?;
    std::io::Write::flush(&mut sink).map_err(|e| e.to_string())?;
    let response = wait_for(future)?;
    let incoming = response.consume().unwrap();
    let mut source = incoming.stream().unwrap();
    let mut echoed = Vec::new();
    let mut buf = [0; 4096];
    for i in 0..rounds {
        if i > 0 {
            sink.write_all(piece(i).as_bytes()).map_err(|e| e.to_string())?;
            std::io::Write::flush(&mut sink).map_err(|e| e.to_string())?;
        }
        while !echoed.ends_with(piece(i).as_bytes()) {
            let n = std::io::Read::read(&mut source, &mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                return Err(format!("the upstream ended after {} bytes", echoed.len()));
            }
            echoed.extend_from_slice(&buf[..n]);
        }
    }
    drop(sink);
    OutgoingBody::finish(body, None).map_err(|e| format!("{e:?}"))?;
    source.read_to_end(&mut echoed).map_err(|e| e.to_string())?;
    Ok(echoed)
}

/// `n` bytes of `x`, written 64 KiB at a time.
fn big(n: usize, out: ResponseOutparam) {
    let response = OutgoingResponse::new(Fields::new());
    let outgoing = response.body().unwrap();
    ResponseOutparam::set(out, Ok(response));
    let mut stream = outgoing.write().unwrap();
    let chunk = vec![b'x'; 64 << 10];
    let mut left = n;
    while left > 0 {
        let k = left.min(chunk.len());
        stream.write_all(&chunk[..k]).unwrap();
        left -= k;
    }
    stream.flush().unwrap();
    drop(stream);
    OutgoingBody::finish(outgoing, None).unwrap();
}

/// Increments `visits` in the store `?name` (none: the default store, as
/// Wasmtime's tests open it).
fn visit(name: &str) -> Result<u64, kv::Error> {
    let bucket = kv::open(name)?;
    atomics::increment(&bucket, "visits", 1)
}

/// Every operation once, in the default store as wasmCloud's examples open
/// it: `set`, `get`, `exists`, `list-keys`, the batch ones, `delete`.
fn kv_tour() -> Result<String, kv::Error> {
    let bucket = kv::open("default")?;
    bucket.set("tour-a", b"1")?;
    batch::set_many(
        &bucket,
        &[
            ("tour-b".to_string(), b"2".to_vec()),
            ("tour-c".to_string(), b"3".to_vec()),
        ],
    )?;
    let a = bucket.get("tour-a")?.map(|v| String::from_utf8_lossy(&v).into_owned());
    let many = batch::get_many(&bucket, &["tour-b".to_string(), "tour-x".to_string()])?;
    let keys = bucket.list_keys(None)?.keys;
    batch::delete_many(&bucket, &["tour-b".to_string()])?;
    bucket.delete("tour-c")?;
    let left = (
        bucket.exists("tour-a")?,
        bucket.exists("tour-b")?,
        bucket.exists("tour-c")?,
    );
    Ok(format!(
        "a={a:?} many={} keys={} left={left:?}",
        many.iter().filter(|m| m.is_some()).count(),
        keys.iter().filter(|k| k.starts_with("tour-")).count()
    ))
}

/// `visit`, through draft2: its increment is signed.
fn visit2(name: &str) -> Result<i64, kv2::Error> {
    let bucket = kv2::open(name)?;
    atomics2::increment(&bucket, "visits", 1)
}

/// Every draft2 store and batch operation once; `get-many` answers each
/// key asked for, found or not, and `list-keys` pages with a string cursor.
fn kv2_tour() -> Result<String, kv2::Error> {
    let bucket = kv2::open("default")?;
    bucket.set("tour2-a", b"1")?;
    batch2::set_many(
        &bucket,
        &[
            ("tour2-b".to_string(), b"2".to_vec()),
            ("tour2-c".to_string(), b"3".to_vec()),
        ],
    )?;
    let a = bucket.get("tour2-a")?.map(|v| String::from_utf8_lossy(&v).into_owned());
    let many: Vec<String> = batch2::get_many(&bucket, &["tour2-b".to_string(), "tour2-x".to_string()])?
        .into_iter()
        .map(|(k, v)| format!("{k}:{:?}", v.map(|v| String::from_utf8_lossy(&v).into_owned())))
        .collect();
    let listed = bucket.list_keys(None)?;
    let bad_cursor = bucket.list_keys(Some("not a cursor")).err();
    batch2::delete_many(&bucket, &["tour2-b".to_string()])?;
    bucket.delete("tour2-c")?;
    let left = (
        bucket.exists("tour2-a")?,
        bucket.exists("tour2-b")?,
        bucket.exists("tour2-c")?,
    );
    let down = atomics2::increment(&bucket, "tour2-n", -5)?;
    Ok(format!(
        "a={a:?} many=[{}] keys={} cursor={:?} bad-cursor={} left={left:?} down={down}",
        many.join(","),
        listed.keys.iter().filter(|k| k.starts_with("tour2-")).count(),
        listed.cursor,
        bad_cursor.is_some_and(|e| matches!(e, kv2::Error::Other(m) if m.contains("cursor"))),
    ))
}

/// Compare-and-swap on key `?key`: one handle made, the key written under
/// it (so its swap must fail, with a handle on the new value), then the
/// swap retried on the fresh handle; the last line is the value left.
fn cas2(key: &str) -> Result<String, kv2::Error> {
    let bucket = kv2::open("default")?;
    let mut said = Vec::new();
    let cas = atomics2::Cas::new(&bucket, key)?;
    said.push(format!("saw {:?}", text_of(cas.current()?)));
    bucket.set(key, b"theirs")?;
    match atomics2::swap(cas, b"mine") {
        Ok(()) => said.push("swapped over theirs".to_string()),
        Err(atomics2::CasError::StoreError(e)) => return Err(e),
        Err(atomics2::CasError::CasFailed(fresh)) => {
            said.push(format!("cas-failed, now {:?}", text_of(fresh.current()?)));
            match atomics2::swap(fresh, b"mine") {
                Ok(()) => said.push("retry swapped".to_string()),
                Err(e) => said.push(format!("retry failed: {e:?}")),
            }
        }
    }
    said.push(format!("left {:?}", text_of(bucket.get(key)?)));
    Ok(said.join("\n"))
}

fn text_of(value: Option<Vec<u8>>) -> Option<String> {
    value.map(|v| String::from_utf8_lossy(&v).into_owned())
}

/// Reads the body and the request's trailers, and answers with the body's
/// length and the trailers it got, and a trailer of its own.
fn trailers(request: IncomingRequest, out: ResponseOutparam) {
    let incoming = request.consume().unwrap();
    let mut body = Vec::new();
    {
        let mut stream = incoming.stream().unwrap();
        stream.read_to_end(&mut body).unwrap();
    }
    let future = wasi::http::types::IncomingBody::finish(incoming);
    let got = loop {
        if let Some(t) = future.get() {
            break t.unwrap().unwrap();
        }
        future.subscribe().block();
    };
    let got: Vec<String> = got
        .map(|f| {
            f.entries()
                .into_iter()
                .map(|(n, v)| format!("{n}={}", String::from_utf8_lossy(&v)))
                .collect()
        })
        .unwrap_or_default();
    let response = OutgoingResponse::new(Fields::new());
    let outgoing = response.body().unwrap();
    ResponseOutparam::set(out, Ok(response));
    let mut stream = outgoing.write().unwrap();
    write!(stream, "body={} trailers=[{}]", body.len(), got.join(",")).unwrap();
    stream.flush().unwrap();
    drop(stream);
    let mine = Fields::new();
    mine.append("x-length", body.len().to_string().as_bytes()).unwrap();
    OutgoingBody::finish(outgoing, Some(mine)).unwrap();
}
