//! Helpers shared by the CLI test binaries: the `atoll` command, running
//! servers, and a minimal HTTP client.

#![allow(dead_code)]

use atoll_testkit::shared_cache_dir;
use std::io::{BufRead, BufReader, Lines, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{ChildStderr, Command, Output, Stdio};

pub fn atoll() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_atoll"));
    cmd.env("ATOLL_CACHE_DIR", shared_cache_dir())
        .env_remove("ATOLL_LOG")
        .env_remove("RUST_LOG")
        .env_remove("ATOLL_OTLP_ENDPOINT");
    // A developer's own OpenTelemetry settings would change what the
    // servers under test export; a test sets what it means to.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("OTEL_") {
            cmd.env_remove(name);
        }
    }
    cmd
}

pub fn run(cmd: &mut Command) -> (Output, String, String) {
    let out = cmd.output().unwrap();
    let (so, se) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    (out, so, se)
}

pub fn wait_for(
    lines: &mut impl Iterator<Item = std::io::Result<String>>,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    for line in lines {
        let line = line.unwrap();
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
            && pred(&v)
        {
            return v;
        }
    }
    panic!("the server's log ended before the expected line");
}

pub fn http_post(addr: &str, path: &str, body: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

pub struct Served {
    pub child: std::process::Child,
    pub addr: String,
}

pub fn serve(dir: &Path) -> Served {
    serve_with(dir, &[])
}

/// `atoll serve <dir> <extra args>` on a free port.
pub fn serve_with(dir: &Path, extra: &[&str]) -> Served {
    let (child, addr, lines) = start_serving(dir, extra);
    // Keep draining the log so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Served { child, addr }
}

/// A server a test started, killed if the test ends (or fails) before
/// stopping it.
pub struct Running(pub std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Every line a server logged, kept as it runs, those before `serving` too:
/// JSON lines parsed, anything else (a panic, say) as a string.
pub type ServerLog = std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>;

/// `cmd` (an `atoll serve ...`) with `extra` arguments, JSON logs, on a
/// free port, once it serves: the server, its address and its log.
pub fn start_logged(cmd: &mut Command, extra: &[&str]) -> (Running, String, ServerLog) {
    let mut child = cmd
        .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = ServerLog::default();
    let keep = |log: &ServerLog, line: String| {
        let v = serde_json::from_str(&line).unwrap_or(serde_json::Value::String(line));
        log.lock().unwrap().push(v);
    };
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut addr = None;
    for line in lines.by_ref().map_while(Result::ok) {
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if v["message"] == "serving" {
            addr = v["address"]
                .as_str()
                .map(|a| a.trim_start_matches("http://").to_string());
        }
        keep(&log, line);
        if addr.is_some() {
            break;
        }
    }
    let Some(addr) = addr else {
        let said: Vec<_> = log.lock().unwrap().iter().map(|v| v.to_string()).collect();
        panic!("the server's log ended before it served:\n{}", said.join("\n"));
    };
    let kept = log.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            keep(&kept, line);
        }
    });
    (Running(child), addr, log)
}

/// The lines of `log` whose message is `message`.
pub fn logged(log: &ServerLog, message: &str) -> Vec<serde_json::Value> {
    log.lock()
        .unwrap()
        .iter()
        .filter(|v| v["message"] == message)
        .cloned()
        .collect()
}

/// Starts `atoll serve <dir> <extra args>` with JSON logs on a free port and
/// waits until it serves: the child, its address and its remaining log lines.
pub fn start_serving(dir: &Path, extra: &[&str]) -> (std::process::Child, String, Lines<BufReader<ChildStderr>>) {
    let mut child = atoll()
        .arg("serve")
        .arg(dir)
        .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = serving_address(&mut lines);
    (child, addr, lines)
}

/// Reads a JSON server log up to its `serving` line: the `host:port` it serves on.
pub fn serving_address(lines: &mut impl Iterator<Item = std::io::Result<String>>) -> String {
    wait_for(lines, |v| v["message"] == "serving")["address"]
        .as_str()
        .unwrap()
        .trim_start_matches("http://")
        .to_string()
}

/// Sends a request with `method`, optional extra headers and a body; the raw
/// response text.
pub fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// `GET path` over HTTPS to `addr`, as `localhost`, trusting only `ca`;
/// the raw response text.
pub fn https_get(addr: &str, ca: &atoll_testkit::TestCa, path: &str) -> std::io::Result<String> {
    let config = ca.client_config(&[b"http/1.1"]);
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let client = rustls::ClientConnection::new(config, name).unwrap();
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    let mut tls = rustls::StreamOwned::new(client, tcp);
    tls.write_all(format!("GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n").as_bytes())?;
    let mut reply = Vec::new();
    // The server closes after its response without TLS's close_notify,
    // which reads as an error after the bytes that count.
    if let Err(e) = tls.read_to_end(&mut reply)
        && reply.is_empty()
    {
        return Err(e);
    }
    Ok(String::from_utf8_lossy(&reply).into_owned())
}

/// The status code of a raw response.
pub fn status(response: &str) -> u16 {
    response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// The body of a raw response.
pub fn body(response: &str) -> &str {
    response.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

/// Sends SIGTERM and waits (10 s at most) for the process to exit.
pub fn terminate(child: &mut std::process::Child) -> std::process::ExitStatus {
    let ok = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(ok.success());
    let started = std::time::Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the server did not exit on SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A bundle's entries, in archive order.
pub fn zip_entries(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    (0..zip.len())
        .map(|i| {
            let mut f = zip.by_index(i).unwrap();
            let mut data = Vec::new();
            f.read_to_end(&mut data).unwrap();
            (f.name().unwrap().to_string(), data)
        })
        .collect()
}

/// A zip of `entries`, compressed (so a large, repetitive entry stays small on the wire).
pub fn rezip(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in entries {
        zip.start_file(name.as_str(), options).unwrap();
        zip.write_all(data).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

/// `entries` with `bundle.json` rewritten to list every other entry (but
/// `signature.json`) with its true SHA-256: what someone altering a
/// bundle without the signing key would do.
pub fn reindex(entries: &mut [(String, Vec<u8>)]) {
    use sha2::Digest;
    let files: serde_json::Map<String, serde_json::Value> = entries
        .iter()
        .filter(|(n, _)| n != "bundle.json" && n != "signature.json")
        .map(|(n, d)| (n.clone(), hex::encode(sha2::Sha256::digest(d)).into()))
        .collect();
    let index = entries.iter_mut().find(|(n, _)| n == "bundle.json").unwrap();
    let mut json: serde_json::Value = serde_json::from_slice(&index.1).unwrap();
    json["files"] = files.into();
    index.1 = serde_json::to_vec_pretty(&json).unwrap();
}
