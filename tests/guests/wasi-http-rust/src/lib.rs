//! A `wasi:http/incoming-handler` component for Atoll's tests, built for
//! `wasm32-wasip2` with the `wasi` crate exactly as `wasmtime serve`
//! examples are. The request path picks what it does, so one component
//! covers every case: say hello (the default, and the benchmark's row),
//! echo the request body back while streaming it, report what it was
//! given, fetch a URL through `outgoing-handler`, write a large body,
//! set a status and headers, loop, trap, or exhaust its memory.

use std::io::{Read as _, Write as _};
use wasi::http::outgoing_handler;
use wasi::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingRequest, OutgoingResponse, ResponseOutparam, Scheme,
};

wasi::http::proxy::export!(Component);

struct Component;

impl wasi::exports::http::incoming_handler::Guest for Component {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let (path, query) = path.split_once('?').unwrap_or((&path, ""));
        match path.rsplit('/').next().unwrap_or("") {
            "echo" => echo(request, out),
            "info" => info(request, out),
            "fetch" => fetch(query, out),
            "big" => big(query.parse().unwrap_or(0), out),
            "status" => respond(out, 201, &[("x-component", "yes"), ("content-type", "text/plain")], b"created"),
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
            _ => respond(out, 200, &[("content-type", "text/plain")], b"Hello from a component!"),
        }
    }
}

fn respond(out: ResponseOutparam, status: u16, headers: &[(&str, &str)], body: &[u8]) {
    let fields = Fields::new();
    for (name, value) in headers {
        fields.append(&name.to_string(), &value.as_bytes().to_vec()).unwrap();
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
    let (scheme, rest) = url.split_once("://").ok_or("no scheme")?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let request = OutgoingRequest::new(Fields::new());
    request
        .set_scheme(Some(&if scheme == "https" { Scheme::Https } else { Scheme::Http }))
        .unwrap();
    request.set_authority(Some(authority)).unwrap();
    request.set_path_with_query(Some(if path.is_empty() { "/" } else { path })).unwrap();
    let future = outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
    let response = loop {
        if let Some(r) = future.get() {
            break r.unwrap().map_err(|e| format!("{e:?}"))?;
        }
        future.subscribe().block();
    };
    let status = response.status();
    let mut body = Vec::new();
    let incoming = response.consume().unwrap();
    incoming.stream().unwrap().read_to_end(&mut body).map_err(|e| e.to_string())?;
    Ok((status, body))
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
