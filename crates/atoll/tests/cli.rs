//! The `atoll` binary as a user runs it.

mod common;

use atoll_testkit::guest_path;
use common::*;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn app(extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(guest_path("wapc-plain"), dir.path().join("plain.wasm")).unwrap();
    let manifest = format!(
        r#"[app]
name = "cli-test"
version = "1.2.3"

[functions.plain]
source = "plain.wasm"

[[routes]]
method = "POST"
path = "/echo"
steps = [{{ fn = "plain", op = "ping" }}]
{extra}"#
    );
    std::fs::write(dir.path().join("atoll.toml"), manifest).unwrap();
    dir
}

#[test]
fn check_accepts_a_good_app() {
    let dir = app("");
    let (out, stdout, stderr) = run(atoll().arg("check").arg(dir.path()));
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout.trim(), "ok: cli-test 1.2.3: 1 function(s), 1 route(s)");
}

#[test]
fn check_reports_manifest_errors_with_file_line_and_key() {
    let dir = app("\n[[routes]]\npath = \"/x\"\nfn = \"missing\"\n");
    let (out, _, stderr) = run(atoll().arg("check").arg(dir.path()));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("atoll.toml:15:6: routes[1].fn: unknown function \"missing\""),
        "{stderr}"
    );
}

#[test]
fn check_reports_a_module_that_is_not_a_wapc_guest_at_its_source_line() {
    let dir = app("");
    std::fs::write(dir.path().join("plain.wasm"), atoll_testkit::wat("(module)")).unwrap();
    let (out, _, stderr) = run(atoll().arg("check").arg(dir.path()));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("atoll.toml:6:10: functions.plain.source"), "{stderr}");
    assert!(stderr.contains("does not export \"__guest_call\""), "{stderr}");

    std::fs::remove_file(dir.path().join("plain.wasm")).unwrap();
    let (_, _, stderr) = run(atoll().arg("check").arg(dir.path()));
    assert!(
        stderr.contains("cannot read") && stderr.contains("plain.wasm"),
        "{stderr}"
    );
}

#[test]
fn call_invokes_a_function_with_inline_file_or_stdin_input() {
    let dir = app("");
    let (out, stdout, stderr) = run(atoll()
        .args(["call"])
        .arg(dir.path())
        .args(["plain", "--op", "upper", "--data", "hi"]));
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout, "HI");

    let input = dir.path().join("input.txt");
    std::fs::write(&input, "from a file").unwrap();
    let (_, stdout, _) = run(atoll()
        .arg("call")
        .arg(dir.path())
        .args(["plain", "--op", "ping", "--input"])
        .arg(&input));
    assert_eq!(stdout, "from a file");

    let mut child = atoll()
        .arg("call")
        .arg(dir.path())
        .args(["plain", "--op", "ping", "--input", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"from stdin").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "from stdin");
}

#[test]
fn call_reports_failures_clearly() {
    let dir = app("");
    let (out, _, stderr) = run(atoll().arg("call").arg(dir.path()).args(["plain", "--op", "fail"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("function \"plain\" failed (status 500): this function fails on purpose"),
        "{stderr}"
    );

    let (out, _, stderr) = run(atoll().arg("call").arg(dir.path()).arg("nope"));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("no function \"nope\"") && stderr.contains("functions: plain"),
        "{stderr}"
    );
}

#[test]
fn every_command_has_help() {
    for sub in ["serve", "call", "check", "build"] {
        let (out, stdout, _) = run(atoll().args([sub, "--help"]));
        assert!(out.status.success());
        assert!(stdout.contains("Usage: atoll"), "{sub}: {stdout}");
    }
    let (_, stdout, _) = run(atoll().arg("--help"));
    for sub in ["serve", "call", "check", "build"] {
        assert!(stdout.contains(sub));
    }
}

#[test]
fn serve_logs_one_json_line_per_request_and_stops_cleanly_on_sigterm() {
    let dir = app("");
    let (mut child, addr, mut lines) = start_serving(dir.path(), &[]);

    let response = http_post(&addr, "/echo", "over the wire");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("over the wire"), "{response}");
    let id = response
        .lines()
        .find_map(|l| l.strip_prefix("x-request-id: "))
        .unwrap()
        .trim()
        .to_string();

    let line = wait_for(&mut lines, |v| v["message"] == "request");
    assert_eq!(line["request_id"], id.as_str());
    assert_eq!(line["status"], 200);
    assert_eq!(line["method"], "POST");
    assert_eq!(line["path"], "/echo");
    assert_eq!(line["route"], "POST /echo");
    assert!(line["duration_us"].as_u64().is_some());

    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "serve did not exit on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "{exit}");
}

#[test]
fn serve_refuses_a_broken_app_before_listening() {
    let dir = app("\n[[routes]]\npath = \"/echo\"\nmethod = \"POST\"\nfn = \"plain\"\n");
    let (out, _, stderr) = run(atoll().arg("serve").arg(dir.path()).args(["--listen", "127.0.0.1:0"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("duplicate route: POST /echo is already declared on line 10"),
        "{stderr}"
    );
}

/// The README's example, as a user runs it: build, check, call.
#[test]
fn the_hello_example_builds_checks_and_answers() {
    let example = atoll_testkit::repo_root().join("examples/hello");
    let (out, _, stderr) = run(atoll().arg("build").arg(&example));
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("[1/1] built hello"), "{stderr}");

    let (out, stdout, stderr) = run(atoll().arg("check").arg(&example));
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.starts_with("ok: hello 0.1.0"), "{stdout}");

    let (out, stdout, stderr) = run(atoll()
        .arg("call")
        .arg(&example)
        .args(["hello", "--op", "echo", "--data", "ping"]));
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout, "ping");
}

/// The cgi example: a CGI program and a waPC function, built as one
/// workspace and served: CGI variables, a static file, a redirect, and the
/// two in one pipeline.
#[test]
fn the_cgi_example_builds_and_serves_a_cgi_program_beside_a_wapc_function() {
    let example = atoll_testkit::repo_root().join("examples/cgi");
    let (out, _, stderr) = run(atoll().arg("build").arg(&example));
    assert!(out.status.success(), "{stderr}");
    let (out, stdout, stderr) = run(atoll().arg("check").arg(&example));
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.starts_with("ok: cgi 0.1.0: 2 function(s)"), "{stdout}");

    let mut served = serve(&example);
    let page = http(&served.addr, "GET", "/cgi/a/b?x=1&y", &[], b"");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.to_ascii_lowercase().contains("x-served-by: cgi"), "{page}");
    for line in [
        "Hello from a CGI program!",
        "SCRIPT_NAME=/cgi",
        "PATH_INFO=/a/b",
        "X_MATCHED_ROUTE=/cgi/*path",
        "arguments=x=1 y",
    ] {
        assert!(page.contains(line), "{line} in {page}");
    }
    let about = http(&served.addr, "GET", "/cgi/about", &[], b"");
    assert!(
        about.contains("read by a CGI program through its read-only static/"),
        "{about}"
    );
    let old = http(&served.addr, "GET", "/cgi/old", &[], b"");
    assert!(
        old.starts_with("HTTP/1.1 302") && old.contains("location: /cgi/new"),
        "{old}"
    );
    let signed = http_post(&served.addr, "/sign", "  ada   LOVELACE ");
    assert!(signed.starts_with("HTTP/1.1 200"), "{signed}");
    assert!(
        signed.ends_with("Hello, Ada Lovelace! Thanks for signing.\n"),
        "{signed}"
    );
    let empty = http_post(&served.addr, "/sign", "   ");
    assert!(
        empty.starts_with("HTTP/1.1 400") && empty.contains("send a name to sign with"),
        "{empty}"
    );
    served.child.kill().unwrap();
    served.child.wait().unwrap();
}

#[test]
fn a_failing_build_shows_its_output_and_fails() {
    let dir = app("");
    let manifest = std::fs::read_to_string(dir.path().join("atoll.toml")).unwrap().replace(
        "source = \"plain.wasm\"",
        "source = \"plain.wasm\"\nbuild = { command = \"echo compiling; echo broken >&2; exit 3\" }",
    );
    std::fs::write(dir.path().join("atoll.toml"), manifest).unwrap();
    let (out, _, stderr) = run(atoll().arg("build").arg(dir.path()));
    assert_eq!(out.status.code(), Some(1));
    // Off a terminal in text, the output stays as the build wrote it: each
    // of its lines a line of its own.
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(lines.contains(&"compiling") && lines.contains(&"broken"), "{stderr}");
    assert!(stderr.contains("the build of plain failed"), "{stderr}");
}

/// A load error quotes the line it points at; a password or a variable's
/// value on that line never reaches the terminal.
#[test]
fn load_errors_never_show_a_password_or_a_variables_value() {
    let dir = app("");
    let rt = dir.path().join("rt.toml");
    for (config, secret, shown) in [
        (
            "[cluster]\ncoordinator = \"redis://admin:hunter2@10.0.0.5:99999/3\"\n",
            "hunter2",
            "redis://admin:***@10.0.0.5:99999/3",
        ),
        ("[variables]\ntoken = \"s3cret-token\n", "s3cret-token", "token = ***"),
    ] {
        std::fs::write(&rt, config).unwrap();
        let (out, stdout, stderr) = run(atoll().arg("check").arg(dir.path()).arg("--runtime-config").arg(&rt));
        assert!(!out.status.success(), "{stdout}{stderr}");
        assert!(stderr.contains("rt.toml:2:"), "{stderr}");
        assert!(stderr.contains(shown), "{stderr}");
        assert!(!stdout.contains(secret) && !stderr.contains(secret), "{stdout}{stderr}");
    }
}

/// A target directory exported for the user's shell (common with a shared
/// cargo cache) does not reach a function's build: its `source` names the
/// file where its own directory builds it.
#[test]
fn a_build_ignores_a_target_directory_set_for_the_shell() {
    let dir = unbuilt_app(
        "echo ${CARGO_TARGET_DIR-unset} ${CARGO_BUILD_TARGET_DIR-unset} > seen.txt && cp plain.src.wasm plain.wasm",
    );
    let (out, _, stderr) = run(atoll()
        .arg("build")
        .arg(dir.path())
        .env("CARGO_TARGET_DIR", "/tmp/elsewhere")
        .env("CARGO_BUILD_TARGET_DIR", "/tmp/elsewhere"));
    assert!(out.status.success(), "{stderr}");
    let seen = std::fs::read_to_string(dir.path().join("seen.txt")).unwrap();
    assert_eq!(seen.trim(), "unset unset");
}

fn caps_app(dir: &Path) {
    std::fs::copy(guest_path("caps-fixture"), dir.join("caps.wasm")).unwrap();
    std::fs::write(
        dir.join("atoll.toml"),
        r#"[app]
name = "durable"

[functions.counter]
source = "caps.wasm"
capabilities = ["kv"]

[[routes]]
method = "POST"
path = "/visit"
steps = [{ fn = "counter", op = "visit" }]
"#,
    )
    .unwrap();
}

/// SIGKILL right after twenty acknowledged increments: all twenty are there
/// when the server comes back.
#[test]
fn nothing_acknowledged_is_lost_when_the_server_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    caps_app(dir.path());
    let mut first = serve(dir.path());
    for i in 1..=20 {
        let reply = http_post(&first.addr, "/visit", "");
        assert!(reply.ends_with(&format!("\r\n\r\n{i}")), "{reply}");
    }
    first.child.kill().unwrap();
    first.child.wait().unwrap();

    let mut second = serve(dir.path());
    let reply = http_post(&second.addr, "/visit", "");
    assert!(reply.ends_with("\r\n\r\n21"), "{reply}");
    second.child.kill().unwrap();
    second.child.wait().unwrap();
    assert!(dir.path().join(".atoll/kv.redb").exists());
}

/// The counter example, served and called as the README and its manifest
/// show, twice over one data directory: the startup log names the store's
/// backend and file, and the curl lines (reset, page, count) answer the
/// same on every run.
#[test]
fn the_counter_example_counts_in_its_store() {
    let example = atoll_testkit::repo_root().join("examples/counter");
    let data = tempfile::tempdir().unwrap();
    let (out, _, stderr) = run(atoll().arg("build").arg(&example));
    assert!(out.status.success(), "{stderr}");
    let data_dir = data.path().to_str().unwrap();
    for run in 0..2 {
        let mut child = atoll()
            .arg("serve")
            .arg(&example)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--log-format",
                "json",
                "--data-dir",
                data_dir,
            ])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let store = wait_for(&mut lines, |v| v["message"] == "kv store");
        let addr = serving_address(&mut lines);
        std::thread::spawn(move || for _ in lines {});
        assert_eq!(store["store"], "default");
        assert_eq!(store["backend"], "redb");
        assert_eq!(store["at"], data.path().join("kv.redb").display().to_string());

        if run == 1 {
            let count = http(&addr, "GET", "/count", &[], b"");
            assert_eq!(body(&count), r#"{"visits":1}"#, "kept across restarts");
        }
        assert_eq!(status(&http(&addr, "POST", "/reset", &[], b"")), 204);
        let page = http(&addr, "GET", "/", &[], b"");
        assert!(body(&page).contains("You are visitor number 1"), "{page}");
        assert_eq!(body(&http(&addr, "GET", "/count", &[], b"")), r#"{"visits":1}"#);
        assert_eq!(
            body(&http(&addr, "GET", "/count", &[], b"")),
            r#"{"visits":1}"#,
            "count does not count"
        );
        terminate(&mut child);
    }
}

/// The fetch example against a stand-in for the GitHub API: the token
/// reaches the API, and never the function's output or logs.
#[test]
fn the_fetch_example_calls_out_with_a_token_it_never_sees() {
    let example = atoll_testkit::repo_root().join("examples/fetch");
    let (out, _, stderr) = run(atoll().arg("build").arg(&example));
    assert!(out.status.success(), "{stderr}");

    let api = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let origin = format!("http://{}", api.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for stream in api.incoming() {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                    break;
                }
                head.push_str(&line);
            }
            record.lock().unwrap().push(head.clone());
            let authorized = head
                .to_ascii_lowercase()
                .contains("authorization: bearer tok-xyz-secret");
            let (status, body) = if authorized {
                ("200 OK", r#"{"login":"octocat"}"#)
            } else {
                ("401 Unauthorized", "{}")
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });

    let dir = tempfile::tempdir().unwrap();
    let wasm = example.join("target/wasm32-wasip1/release/fetch.wasm");
    let manifest = std::fs::read_to_string(example.join("atoll.toml"))
        .unwrap()
        .replace("https://api.github.com", &origin)
        .replace("target/wasm32-wasip1/release/fetch.wasm", &wasm.display().to_string());
    std::fs::write(dir.path().join("atoll.toml"), manifest).unwrap();

    let (out, stdout, stderr) = run(atoll()
        .arg("call")
        .arg(dir.path())
        .args(["github", "--op", "me"])
        .env("ATOLL_VAR_GITHUB_TOKEN", "tok-xyz-secret")
        .env(
            "ATOLL_LOG",
            "info,atoll=trace,atoll_caps=trace,atoll_runtime=trace,atoll_wapc=trace",
        ));
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout, "octocat\n");
    assert!(
        !stdout.contains("tok-xyz") && !stderr.contains("tok-xyz"),
        "the token leaked: {stderr}"
    );
    assert!(
        seen.lock().unwrap().iter().any(|h| h.contains("tok-xyz-secret")),
        "the API got the token"
    );

    // Without the token the app does not start, and says how to give it.
    let (out, _, stderr) = run(atoll().arg("call").arg(dir.path()).args(["github", "--op", "me"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("variables.github_token") && stderr.contains("ATOLL_VAR_GITHUB_TOKEN"),
        "{stderr}"
    );
}

/// `atoll call --route` runs a route's whole pipeline, as a request would.
#[test]
fn call_runs_a_routes_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(guest_path("caps-fixture"), dir.path().join("f.wasm")).unwrap();
    std::fs::write(
        dir.path().join("atoll.toml"),
        r#"[app]
name = "routes"

[functions.f]
source = "f.wasm"

[[routes]]
method = "POST"
path = "/items/:id"
steps = [{ fn = "f", op = "tag", as = "t" }, { fn = "f", op = "upper", input = "t" }]

[[routes]]
path = "/missing"
steps = [{ fn = "f", op = "fail" }]
"#,
    )
    .unwrap();
    let (out, stdout, stderr) = run(atoll().arg("call").arg(dir.path()).args([
        "--route",
        "POST /items/7?x=1",
        "-i",
        "--data",
        "abc",
        "-H",
        "x-a: b",
    ]));
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout, "HTTP/1.1 202 Accepted\nx-tag: abc\n\nABC");

    let (out, stdout, _) =
        run(atoll()
            .arg("call")
            .arg(dir.path())
            .args(["--route", "GET /missing", "--data", "404 gone"]));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout, r#"{"error":"gone","function":"f"}"#);

    let (out, _, stderr) = run(atoll().arg("call").arg(dir.path()).args(["--route", "GET /items/7"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("/items/7 has no GET route; it accepts POST"),
        "{stderr}"
    );
    let (_, _, stderr) = run(atoll().arg("call").arg(dir.path()).args(["--route", "GET /nowhere"]));
    assert!(stderr.contains("no route matches GET /nowhere"), "{stderr}");
}

/// The pipeline example's order route, run locally with `--route`.
#[test]
fn the_pipeline_example_takes_orders() {
    let example = atoll_testkit::repo_root().join("examples/pipeline");
    let data = tempfile::tempdir().unwrap();
    let (out, _, stderr) = run(atoll().arg("build").arg(&example));
    assert!(out.status.success(), "{stderr}");
    let order = |body: &str| {
        let (out, stdout, stderr) = run(atoll()
            .arg("call")
            .arg(&example)
            .args(["--route", "POST /orders", "-i", "--data", body, "--data-dir"])
            .arg(data.path()));
        (out.status.code(), stdout, stderr)
    };
    let (code, stdout, _) = order(r#"{"item":"kayak","qty":2}"#);
    assert_eq!(code, Some(0));
    assert!(
        stdout.starts_with("HTTP/1.1 409 Conflict\n") && stdout.contains(r#""reason":"not enough in stock""#),
        "{stdout}"
    );

    let (out, stdout, stderr) = run(atoll()
        .arg("call")
        .arg(&example)
        .args(["restock", "--op", "restock", "--data", "5", "--data-dir"])
        .arg(data.path()));
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout, "restocked 5");

    let (_, stdout, _) = order(r#"{"item":"kayak","qty":2}"#);
    assert!(
        stdout.starts_with("HTTP/1.1 201 Created\n")
            && stdout.contains(r#""accepted":true"#)
            && stdout.contains("179800"),
        "{stdout}"
    );
    let (_, stdout, _) = order(r#"{"item":"canoe","qty":1}"#);
    assert!(stdout.contains(r#""reason":"no such item: canoe""#), "{stdout}");
    let (code, stdout, _) = order(r#"{"qty":"x"}"#);
    assert_eq!(code, Some(1));
    assert!(
        stdout.contains(r#""function":"validate""#) && stdout.contains("a bad order"),
        "{stdout}"
    );
}

/// `atoll new` makes an app (or adds a function to one) that builds and
/// answers as written, from either template.
#[test]
fn new_functions_build_and_serve_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (out, _, stderr) = run(atoll().current_dir(d).args(["new", "greeter"]));
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("atoll serve --build"),
        "it says what to do next: {stderr}"
    );
    let (out, _, stderr) =
        run(atoll()
            .current_dir(d)
            .args(["new", "echoer", "--template", "rust-wapc", "--app", "greeter"]));
    assert!(out.status.success(), "{stderr}");

    let app = d.join("greeter");
    let (out, _, stderr) = run(atoll().arg("build").arg(&app));
    assert!(out.status.success(), "{stderr}");
    let (out, stdout, stderr) = run(atoll().arg("call").arg(&app).args(["--route", "GET /greeter?name=ada"]));
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout, "Hello, ada, from greeter!\n");
    let (_, stdout, _) = run(atoll()
        .arg("call")
        .arg(&app)
        .args(["--route", "POST /echoer", "--data", "ping"]));
    assert_eq!(stdout, "echoer got: ping");
    let (out, stdout, _) = run(atoll().arg("check").arg(&app));
    assert!(
        out.status.success() && stdout.contains("2 function(s), 2 route(s)"),
        "{stdout}"
    );

    let (out, _, stderr) = run(atoll().current_dir(d).args(["new", "echoer", "--app", "greeter"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("already"), "{stderr}");
    let (out, _, stderr) = run(atoll().current_dir(d).args(["new", "Bad Name"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("not a valid function name"), "{stderr}");
}

#[test]
fn inspect_shows_what_each_function_may_call() {
    let dir = app(r#"
[functions.checkout]
source = "plain.wasm"
links = { "pricing" = "plain", "sample.ns" = "plain" }
"#);
    let (o, stdout, stderr) = run(atoll().args(["inspect", "--json"]).arg(dir.path()));
    assert!(o.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let checkout = v["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "checkout")
        .unwrap();
    assert_eq!(
        checkout["links"],
        serde_json::json!(["pricing → plain", "sample.ns → plain"])
    );
    let (_, text, _) = run(atoll().arg("inspect").arg(dir.path()));
    assert!(text.contains("calls: pricing → plain, sample.ns → plain"), "{text}");
}

#[test]
fn inspect_shows_each_function_s_concurrency_limit() {
    let dir = app(r#"
[functions.limited]
source = "plain.wasm"
max_concurrency = 4
max_queue = "250ms"
"#);
    let (o, stdout, stderr) = run(atoll().args(["inspect", "--json"]).arg(dir.path()));
    assert!(o.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let function = |name: &str| {
        v["functions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(function("limited")["max_concurrency"], 4);
    assert_eq!(function("limited")["max_queue_ms"], 250);
    assert!(function("plain")["max_concurrency"].is_null());
    let (_, text, _) = run(atoll().arg("inspect").arg(dir.path()));
    assert!(text.contains("at most 4 at once (queue 250 ms)"), "{text}");
}

#[test]
fn inspect_and_check_show_queries_and_migrations() {
    let dir = app(r#"
[queries.get_user]
sql = "SELECT id, name FROM users WHERE id = $1"

[functions.users]
source = "plain.wasm"
capabilities = ["sql"]
queries = ["get_user"]
"#);
    std::fs::create_dir_all(dir.path().join("migrations")).unwrap();
    std::fs::write(
        dir.path().join("migrations/001_users.sql"),
        "CREATE TABLE users (id BIGINT PRIMARY KEY, name TEXT);\n",
    )
    .unwrap();
    let (o, text, stderr) = run(atoll().arg("inspect").arg(dir.path()));
    assert!(o.status.success(), "{stderr}");
    assert!(text.contains("queries: get_user"), "{text}");
    assert!(
        text.contains("get_user         on default    SELECT id, name FROM users WHERE id = $1"),
        "{text}"
    );
    assert!(text.contains("migrations\n  001_users.sql"), "{text}");
    let (o, stdout, stderr) = run(atoll().arg("check").arg(dir.path()));
    assert!(o.status.success(), "{stdout}{stderr}");

    // The schema is checked at load: a query on a missing table is an
    // error at its line.
    let manifest = std::fs::read_to_string(dir.path().join("atoll.toml")).unwrap();
    std::fs::write(
        dir.path().join("atoll.toml"),
        manifest.replace("FROM users", "FROM userz"),
    )
    .unwrap();
    let (o, _, stderr) = run(atoll().arg("check").arg(dir.path()));
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("queries.get_user.sql: on database \"default\" (sqlite): no such table: userz"),
        "{stderr}"
    );
}

/// `atoll inspect | head` ends quietly when its reader goes away, as `ls`
/// does, not with a panic about a broken pipe.
#[test]
fn inspect_ends_quietly_when_its_reader_goes_away() {
    let dir = app("");
    let mut child = atoll()
        .arg("inspect")
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Closed long before the app is read and the report written.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
        "{stderr}"
    );
    assert!(!out.status.success(), "ended by the closed pipe");
}

/// An app whose one function has a `build` command (`command`) writing
/// `plain.wasm`, which is not there yet.
fn unbuilt_app(command: &str) -> tempfile::TempDir {
    let dir = app("");
    std::fs::rename(dir.path().join("plain.wasm"), dir.path().join("plain.src.wasm")).unwrap();
    let manifest = std::fs::read_to_string(dir.path().join("atoll.toml")).unwrap().replace(
        "source = \"plain.wasm\"",
        &format!("source = \"plain.wasm\"\nbuild = {{ command = \"{command}\", watch = [\"src/**/*.txt\"] }}"),
    );
    std::fs::write(dir.path().join("atoll.toml"), manifest).unwrap();
    dir
}

/// The line of `stderr` holding `needle`, trimmed.
fn line_with<'a>(stderr: &'a str, needle: &str) -> &'a str {
    stderr
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in: {stderr}"))
        .trim()
}

/// `atoll new`'s next steps run as printed (the binary is not on the test's
/// PATH, so the hint names it by path), even for a directory with a space.
#[test]
fn new_prints_next_steps_that_run_as_printed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("my apps")).unwrap();
    let (out, _, stderr) = run(atoll()
        .current_dir(dir.path())
        .args(["new", "shop", "--app", "my apps"]));
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("created function \"shop\" (rust-http) in"), "{stderr}");
    let serve_line = line_with(&stderr, "serve --build");
    assert!(serve_line.ends_with(" serve --build 'my apps/shop'"), "{serve_line}");
    let curl_line = line_with(&stderr, "curl ");
    assert_eq!(curl_line, "curl 'http://127.0.0.1:3000/shop?name=you'");

    // The printed line, as a shell runs it; only a free port is added.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("exec {serve_line} --listen 127.0.0.1:0 --log-format json"))
        .current_dir(dir.path())
        .env("ATOLL_CACHE_DIR", atoll_testkit::shared_cache_dir())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = serving_address(&mut lines);
    std::thread::spawn(move || for _ in lines {});
    let reply = http(&addr, "GET", "/shop?name=you", &[], b"");
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(body(&reply), "Hello, you, from shop!\n", "{reply}");
}

/// One rule for function names, in the same words everywhere: `atoll new
/// --help` states it, `atoll new` and the manifest enforce it (so a name
/// `new` refuses is refused in atoll.toml too), and the README says it.
#[test]
fn new_states_the_name_rule_it_enforces() {
    let rule = "lower-case letters, digits, - and _, starting with a letter";
    let (_, help, _) = run(atoll().args(["new", "--help"]));
    assert!(help.replace('\n', " ").contains(rule), "{help}");
    let dir = tempfile::tempdir().unwrap();
    for bad in ["Shop", "1shop", "sh op"] {
        let (out, _, stderr) = run(atoll().current_dir(dir.path()).args(["new", bad]));
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr.contains(&format!("\"{bad}\" is not a valid function name ({rule})")),
            "{stderr}"
        );
    }
    let (_, _, stderr) = run(atoll().current_dir(dir.path()).args(["new", "Shop"]));
    assert!(stderr.contains("; try \"shop\""), "{stderr}");
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "nothing written"
    );

    let app = app("");
    let manifest = std::fs::read_to_string(app.path().join("atoll.toml")).unwrap();
    std::fs::write(
        app.path().join("atoll.toml"),
        manifest.replace("[functions.plain]", "[functions.Plain]"),
    )
    .unwrap();
    let (out, _, stderr) = run(atoll().arg("check").arg(app.path()));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains(&format!("\"Plain\" is not a valid function name ({rule})")),
        "{stderr}"
    );

    let readme = std::fs::read_to_string(atoll_testkit::repo_root().join("README.md")).unwrap();
    let stated = readme.replace('\n', " ").matches(rule).count();
    assert!(
        stated >= 2,
        "the developer loop and the manifest reference state the rule"
    );
}

/// A module not built yet: check, call, serve and bundle say how to build
/// it, and the hint runs as printed.
#[test]
fn an_unbuilt_module_comes_with_the_command_that_builds_it() {
    let dir = unbuilt_app("cp plain.src.wasm plain.wasm");
    let (out, _, check) = run(atoll().arg("check").arg(dir.path()));
    assert_eq!(out.status.code(), Some(1));
    assert!(check.contains("cannot read"), "{check}");
    let hint = line_with(&check, "hint:");
    assert!(
        hint.starts_with("hint: the module of plain is not built yet; build it with `")
            && hint.ends_with(&format!(" build {}`", dir.path().display())),
        "{hint}"
    );
    let (_, _, stderr) = run(atoll().arg("call").arg(dir.path()).arg("plain"));
    assert!(line_with(&stderr, "hint:").contains(" build "), "{stderr}");
    let (out, _, stderr) = run(atoll().arg("serve").arg(dir.path()).args(["--listen", "127.0.0.1:0"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        line_with(&stderr, "hint:").ends_with(&format!(" serve --build {}`", dir.path().display())),
        "{stderr}"
    );
    let (out, _, stderr) = run(atoll().current_dir(dir.path()).arg("bundle").arg(dir.path()));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("cannot be bundled before it is built"), "{stderr}");
    let bundle_hint = line_with(&stderr, "hint:");
    assert!(
        bundle_hint.ends_with(&format!(" bundle --build {}`", dir.path().display())),
        "{stderr}"
    );
    assert!(!dir.path().join("cli-test.atoll").exists());

    // Two functions unbuilt are both named, in the plural.
    let manifest = std::fs::read_to_string(dir.path().join("atoll.toml")).unwrap();
    let second = manifest[manifest.find("[functions.plain]").unwrap()..manifest.find("[[routes]]").unwrap()]
        .replace("[functions.plain]", "[functions.other]");
    std::fs::write(dir.path().join("atoll.toml"), format!("{manifest}\n{second}")).unwrap();
    let (_, _, stderr) = run(atoll().arg("check").arg(dir.path()));
    assert!(
        line_with(&stderr, "hint:")
            .starts_with("hint: the modules of other and plain are not built yet; build them with `"),
        "{stderr}"
    );
    std::fs::write(dir.path().join("atoll.toml"), manifest).unwrap();

    // Run as printed, check's hint builds it.
    let command = hint.split('`').nth(1).unwrap();
    let (out, _, stderr) = run(Command::new("sh").arg("-c").arg(command));
    assert!(out.status.success(), "{stderr}");
    let (out, _, stderr) = run(atoll().arg("check").arg(dir.path()));
    assert!(out.status.success(), "{stderr}");
    // And bundle's bundles, in the directory it runs in.
    let command = bundle_hint.split('`').nth(1).unwrap();
    let (out, _, stderr) = run(Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(dir.path())
        .env("ATOLL_CACHE_DIR", atoll_testkit::shared_cache_dir()));
    assert!(out.status.success(), "{stderr}");
    assert!(dir.path().join("cli-test.atoll").exists());
}

/// A port in use is reported before the build runs, with the option that
/// chooses another.
#[test]
fn serve_reports_a_port_in_use_before_building() {
    let dir = unbuilt_app("touch built; sleep 20; cp plain.src.wasm plain.wasm");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let started = Instant::now();
    let (out, _, stderr) = run(atoll()
        .arg("serve")
        .arg(dir.path())
        .args(["--build", "--listen", &addr]));
    assert_eq!(out.status.code(), Some(1));
    assert!(started.elapsed() < Duration::from_secs(15), "it waited for the build");
    assert!(
        stderr.contains(&format!("cannot listen on {addr}: the address is in use")) && stderr.contains("--listen"),
        "{stderr}"
    );
    assert!(!dir.path().join("built").exists(), "the build ran");
}

/// `bundle` and `inspect` say which size they report.
#[test]
fn bundle_and_inspect_name_their_sizes() {
    let dir = app("");
    let out_path = dir.path().join("app.atoll");
    let (out, _, stderr) = run(atoll().arg("bundle").arg(dir.path()).arg("-o").arg(&out_path));
    assert!(out.status.success(), "{stderr}");
    let file = std::fs::metadata(&out_path).unwrap().len();
    let human = |n: u64| {
        if n >= 1 << 10 {
            format!("{:.1} KiB", n as f64 / 1024.0)
        } else {
            format!("{n} B")
        }
    };
    assert!(stderr.contains(&format!("{} file", human(file))), "{stderr}");
    assert!(stderr.contains(" unpacked, "), "{stderr}");
    let (out, stdout, stderr) = run(atoll().arg("inspect").arg(&out_path));
    assert!(out.status.success(), "{stderr}");
    let line = line_with(&stdout, "bundle ");
    assert!(
        line.contains(" unpacked, ") && line.ends_with(&format!("{} file)", human(file))),
        "{line}"
    );
}

/// Off a terminal with JSON logs, a failed build is one JSON object per
/// line of its output, and so is its progress: nothing else on stderr.
#[test]
fn a_failed_build_under_json_logs_stays_one_object_per_line() {
    let dir = unbuilt_app("echo 'error[E0308]: mismatched types'; echo '  --> src/lib.rs:3:5' >&2; exit 101");
    let (out, _, stderr) =
        run(atoll()
            .arg("serve")
            .arg(dir.path())
            .args(["--build", "--listen", "127.0.0.1:0", "--log-format", "json"]));
    assert_eq!(out.status.code(), Some(1));
    let events: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l:?} in {stderr}")))
        .collect();
    let messages: Vec<&str> = events.iter().map(|e| e["message"].as_str().unwrap()).collect();
    assert!(messages.contains(&"building"), "{stderr}");
    assert!(messages.contains(&"error[E0308]: mismatched types"), "{stderr}");
    assert!(messages.contains(&"  --> src/lib.rs:3:5"), "{stderr}");
    assert!(messages.iter().all(|m| !m.contains('\n')), "{stderr}");
    let failed = events.iter().find(|e| e["message"] == "the build failed").unwrap();
    assert_eq!(failed["dir"], dir.path().display().to_string(), "no trailing /.");
}

/// `--watch` watches the app's sources, not its build output: no notify
/// noise when a build creates and deletes directories under `target/`, and
/// a directory created after the start is watched too.
#[test]
fn watch_follows_sources_quietly() {
    let dir = unbuilt_app("mkdir -p target/a/b target/c && rm -rf target/a target/c && cp plain.src.wasm plain.wasm");
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    let (mut child, _addr, mut lines) = start_serving(dir.path(), &["--build", "--watch"]);
    let mut seen = Vec::new();
    let until = |lines: &mut Lines, message: &str, seen: &mut Vec<String>| {
        for line in lines.by_ref() {
            let line = line.unwrap();
            seen.push(line.clone());
            if serde_json::from_str::<serde_json::Value>(&line).is_ok_and(|v| v["message"] == message) {
                return;
            }
        }
        panic!("no {message:?} in: {seen:#?}");
    };
    std::fs::write(dir.path().join("src/a.txt"), "1").unwrap();
    until(&mut lines, "swapped in a new version", &mut seen);
    // A new directory, and a file in it written at once.
    std::fs::create_dir_all(dir.path().join("src/new/deeper")).unwrap();
    std::fs::write(dir.path().join("src/new/deeper/b.txt"), "2").unwrap();
    until(&mut lines, "swapped in a new version", &mut seen);
    let rebuilds = seen.iter().filter(|l| l.contains("\"rebuilding\"")).count();
    std::fs::write(dir.path().join("src/new/deeper/b.txt"), "3").unwrap();
    until(&mut lines, "swapped in a new version", &mut seen);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(rebuilds, 2, "{seen:#?}");
    assert!(
        seen.iter().filter(|l| l.contains("\"rebuilding\"")).count() == 3,
        "{seen:#?}"
    );
    assert!(
        !seen
            .iter()
            .any(|l| l.contains("watch descriptor") || l.contains("notify")),
        "{seen:#?}"
    );
}

type Lines = std::io::Lines<BufReader<std::process::ChildStderr>>;

/// `atoll serve <dir> <extra>`'s first "kv store" log line, and its log up
/// to "serving".
fn store_line(dir: &Path, extra: &[&std::ffi::OsStr]) -> (serde_json::Value, String) {
    let mut child = atoll()
        .arg("serve")
        .arg(dir)
        .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = String::new();
    let mut store = None;
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        log.push_str(&line);
        log.push('\n');
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        if v["message"] == "kv store" && store.is_none() {
            store = Some(v);
        } else if v["message"] == "serving" {
            break;
        }
    }
    child.kill().unwrap();
    let _ = child.wait();
    (store.unwrap_or_else(|| panic!("no kv store line in: {log}")), log)
}

/// At start, one line per key-value store says which backend serves it and
/// where, without a password.
#[test]
fn serve_names_each_stores_backend() {
    let dir = tempfile::tempdir().unwrap();
    caps_app(dir.path());
    let (store, _) = store_line(dir.path(), &[]);
    assert_eq!(store["store"], "default");
    assert_eq!(store["backend"], "redb");
    assert!(store["at"].as_str().unwrap().ends_with(".atoll/kv.redb"), "{store}");

    // Redis connects on first use, so no server is needed to see the line.
    let config = dir.path().join("runtime.toml");
    std::fs::write(
        &config,
        "[kv.default]\nbackend = \"redis\"\nurl = \"redis://app:hunter2@127.0.0.1:1/0\"\n",
    )
    .unwrap();
    let (store, log) = store_line(dir.path(), &["--runtime-config".as_ref(), config.as_os_str()]);
    assert_eq!(store["backend"], "redis");
    assert_eq!(store["at"], "redis://app:***@127.0.0.1:1/0");
    assert_eq!(store["prefix"], "atoll:durable");
    assert!(!log.contains("hunter2"), "{log}");
}

/// The pipeline example as its README lines say, on every run: an accepted
/// order lowers the stock, an order for more than is left is 409, and a
/// refill brings the stock back to 5 however often it runs.
#[test]
fn the_pipeline_example_sells_only_what_it_has() {
    let example = atoll_testkit::repo_root().join("examples/pipeline");
    let data = tempfile::tempdir().unwrap();
    let (out, _, stderr) = run(atoll().arg("build").arg(&example));
    assert!(out.status.success(), "{stderr}");
    let call = |args: &[&str]| {
        let (out, stdout, stderr) = run(atoll()
            .arg("call")
            .arg(&example)
            .args(args)
            .arg("--data-dir")
            .arg(data.path()));
        assert!(out.status.success(), "{stderr}");
        stdout
    };
    let kayaks = || {
        let stats: serde_json::Value = serde_json::from_str(&call(&["--route", "GET /stats"])).unwrap();
        stats["stock"]["kayak"].as_i64().unwrap()
    };
    let order = || call(&["--route", "POST /orders", "-i", "--data", r#"{"item":"kayak","qty":2}"#]);
    for _ in 0..2 {
        assert_eq!(call(&["restock", "--op", "restock", "--data", "5"]), "restocked 5");
    }
    assert_eq!(kayaks(), 5, "a refill, not an addition");
    assert!(order().starts_with("HTTP/1.1 201 Created\n"));
    assert_eq!(kayaks(), 3);
    assert!(order().starts_with("HTTP/1.1 201 Created\n"));
    let refused = order();
    assert!(
        refused.starts_with("HTTP/1.1 409 Conflict\n") && refused.contains("not enough in stock"),
        "{refused}"
    );
    assert_eq!(kayaks(), 1, "a refused order takes nothing");
    call(&["restock", "--op", "restock", "--data", "5"]);
    assert_eq!(kayaks(), 5);
}

/// What a terminal `width` columns wide shows after `bytes`: the few
/// controls progress bars and coloured logs use (carriage return, newline,
/// cursor up and down, erase line and below, and the wrap after the last
/// column that bars padded to the width rely on), other escapes dropped.
fn screen(bytes: &[u8], width: usize) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    let mut rows: Vec<Vec<char>> = vec![Vec::new()];
    let (mut row, mut col) = (0usize, 0usize);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => col = 0,
            '\n' => {
                row += 1;
                col = 0;
                if rows.len() <= row {
                    rows.push(Vec::new());
                }
            }
            '\x1b' if chars.peek() == Some(&'[') => {
                chars.next();
                let mut arg = String::new();
                let end = loop {
                    match chars.next() {
                        Some(ch) if ch.is_ascii_digit() || ch == ';' || ch == '?' => arg.push(ch),
                        Some(ch) => break ch,
                        None => break ' ',
                    }
                };
                let n: usize = arg.parse().unwrap_or(1);
                match end {
                    'A' => row = row.saturating_sub(n),
                    'B' => {
                        row += n;
                        while rows.len() <= row {
                            rows.push(Vec::new());
                        }
                    }
                    'K' => rows[row].clear(),
                    'J' => {
                        rows[row].truncate(col);
                        rows.truncate(row + 1);
                    }
                    _ => {}
                }
            }
            c if !c.is_control() => {
                if col >= width {
                    row += 1;
                    col = 0;
                    if rows.len() <= row {
                        rows.push(Vec::new());
                    }
                }
                let line = &mut rows[row];
                if line.len() <= col {
                    line.resize(col, ' ');
                    line.push(c);
                } else {
                    line[col] = c;
                }
                col += 1;
            }
            _ => {}
        }
    }
    rows.into_iter()
        .map(|r| r.into_iter().collect::<String>().trim_end().to_string())
        .collect()
}

/// On a terminal, progress bars and log lines never share a line: each
/// finished build leaves one line, and the log starts on a line of its own.
#[test]
fn progress_and_logs_do_not_collide_on_a_terminal() {
    let dir = unbuilt_app("sleep 1; cp plain.src.wasm plain.wasm");
    let manifest = std::fs::read_to_string(dir.path().join("atoll.toml")).unwrap()
        + "\n[functions.other]\nsource = \"plain.src.wasm\"\nbuild = { command = \"sleep 0.3\" }\n";
    std::fs::write(dir.path().join("atoll.toml"), manifest).unwrap();
    let (mut master, mut slave) = (0, 0);
    let size = libc::winsize {
        ws_row: 40,
        ws_col: 160,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: openpty writes two descriptors into the locals.
    let opened = unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), &size) };
    assert_eq!(opened, 0);
    // SAFETY: both descriptors were just opened and are owned here only.
    let (master, slave) = unsafe {
        use std::os::fd::FromRawFd;
        (
            std::fs::File::from_raw_fd(master),
            std::os::fd::OwnedFd::from_raw_fd(slave),
        )
    };
    let mut child = atoll()
        .arg("serve")
        .arg(dir.path())
        .args(["--build", "--listen", "127.0.0.1:0"])
        .stderr(Stdio::from(slave))
        .spawn()
        .unwrap();
    let output = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = output.clone();
    std::thread::spawn(move || {
        let mut master = master;
        let mut buf = [0u8; 4096];
        while let Ok(n) = std::io::Read::read(&mut master, &mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    let started = Instant::now();
    let shown = loop {
        let shown = screen(&output.lock().unwrap(), size.ws_col.into());
        if shown.iter().any(|l| l.contains(" serving ")) {
            break shown;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{shown:#?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    // Whatever width the bars were padded to, each log line starts on a
    // line of its own: after a newline, or after the bars were erased.
    let raw = String::from_utf8_lossy(&output.lock().unwrap()).into_owned();
    let logs: Vec<usize> = raw.match_indices("\x1b[2m20").map(|(i, _)| i).collect();
    assert!(!logs.is_empty(), "{raw:?}");
    for at in logs {
        let before = &raw[..at];
        assert!(
            before.ends_with('\n') || before.ends_with("\r\x1b[2K"),
            "a log line written after other text: {:?}",
            before
                .chars()
                .rev()
                .take(120)
                .collect::<String>()
                .chars()
                .rev()
                .collect::<String>()
        );
    }
    let built: Vec<&String> = shown.iter().filter(|l| l.contains("] built ")).collect();
    assert_eq!(built.len(), 2, "{shown:#?}");
    for line in &shown {
        let is_log = line.contains(" INFO ");
        assert!(
            !(is_log && (line.contains("] built") || line.contains("building"))),
            "a log line shares a line with progress: {line:?}\n{shown:#?}"
        );
        if is_log {
            assert!(
                line.starts_with("20"),
                "a log line that does not start its line: {line:?}"
            );
        }
    }
    assert!(
        !shown.iter().any(|l| l.contains("building")),
        "a bar left behind: {shown:#?}"
    );
}

/// The mixed example as its README lines say: one pipeline through a waPC
/// function, a wasi:http component and a CGI program (a note checked,
/// stored with wasi:keyvalue, thanked for in HTML), a refused note stopping
/// it before anything is stored, the component alone reading the same
/// store, and the store still there after a restart.
#[test]
fn the_mixed_example_runs_a_wapc_function_a_component_and_a_cgi_program_in_one_pipeline() {
    let example = atoll_testkit::repo_root().join("examples/mixed");
    let (out, _, stderr) = run(atoll().arg("build").arg(&example));
    assert!(out.status.success(), "{stderr}");
    for function in ["check", "notes", "page"] {
        assert!(stderr.contains(&format!("] built {function} in ")), "{stderr}");
    }
    let (out, stdout, stderr) = run(atoll().arg("check").arg(&example));
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.starts_with("ok: mixed 0.1.0: 3 function(s)"), "{stdout}");

    let data = tempfile::tempdir().unwrap();
    let data_dir = ["--data-dir", data.path().to_str().unwrap()];
    // Stops a server however the test ends: a failed assertion must not
    // leave it running (cargo would wait for it).
    struct Stopped(std::process::Child);
    impl Drop for Stopped {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let (child, addr, mut log) = start_serving(&example, &data_dir);
    let server = Stopped(child);
    let get_json = |addr: &str, path: &str| {
        let reply = http(addr, "GET", path, &[], b"");
        assert_eq!(status(&reply), 200, "{reply}");
        serde_json::from_str::<serde_json::Value>(&whole_body(&reply)).unwrap_or_else(|e| panic!("{e}: {reply}"))
    };
    let head = |reply: &str| reply.split("\r\n\r\n").next().unwrap().to_ascii_lowercase() + "\r\n";
    let json = [("content-type", "application/json")];
    assert_eq!(
        get_json(&addr, "/notes"),
        serde_json::json!({ "count": 0, "notes": [] })
    );

    // check tidies, notes numbers and stores (201, location), page renders:
    // the component's status and location stand, the page's content type
    // replaces the component's.
    let signed = http(
        &addr,
        "POST",
        "/notes",
        &json,
        br#"{"author":"  Ada   Lovelace ","text":" Hello,\n  <world> "}"#,
    );
    assert_eq!(status(&signed), 201, "{signed}");
    assert!(head(&signed).contains("\r\nlocation: /notes/1\r\n"), "{signed}");
    assert!(
        head(&signed).contains("\r\ncontent-type: text/html; charset=utf-8\r\n"),
        "{signed}"
    );
    for line in [
        "<p>Thanks, Ada Lovelace! Yours is note number 1.</p>",
        "<blockquote>Hello, &lt;world&gt;</blockquote>",
    ] {
        assert!(body(&signed).contains(line), "{line} in {signed}");
    }
    // The component's wasi:logging line, in the host log with the log
    // grant, before this request's own line.
    let logged: Vec<serde_json::Value> = log
        .by_ref()
        .map(|line| serde_json::from_str(&line.unwrap()).unwrap_or_default())
        .take_while(|v: &serde_json::Value| !(v["message"] == "request" && v["method"] == "POST"))
        .collect();
    assert!(
        logged
            .iter()
            .any(|v| v["message"] == "[notes] note 1 from Ada Lovelace" && v["function"] == "notes"),
        "{logged:#?}"
    );
    std::thread::spawn(move || for _ in log {});

    // The page's form, as a browser posts it; no name is "anonymous".
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let signed = http(
        &addr,
        "POST",
        "/notes",
        &form,
        b"author=Grace+Hopper&text=It%27s+easier+to+ask+forgiveness",
    );
    assert_eq!(status(&signed), 201, "{signed}");
    assert!(head(&signed).contains("\r\nlocation: /notes/2\r\n"), "{signed}");
    let signed = http(&addr, "POST", "/notes", &json, br#"{"text":"hi"}"#);
    assert!(
        body(&signed).contains("<p>Thanks, anonymous! Yours is note number 3.</p>"),
        "{signed}"
    );

    // Refused by check (the waPC function): the pipeline stops there.
    let empty = http(&addr, "POST", "/notes", &json, br#"{"author":"Ada","text":" \n "}"#);
    assert_eq!(status(&empty), 422, "{empty}");
    assert!(
        body(&empty).contains("a note needs some text") && body(&empty).contains(r#""function":"check""#),
        "{empty}"
    );
    let garbled = http(&addr, "POST", "/notes", &json, b"{\"text\":");
    assert_eq!(status(&garbled), 400, "{garbled}");
    assert!(body(&garbled).contains("invalid JSON"), "{garbled}");

    // The component alone, on the store the pipeline wrote: three notes,
    // none of the refused ones, newest first.
    let listed = get_json(&addr, "/notes");
    assert_eq!(
        listed,
        serde_json::json!({ "count": 3, "notes": [
            { "id": 3, "author": "anonymous", "text": "hi" },
            { "id": 2, "author": "Grace Hopper", "text": "It's easier to ask forgiveness" },
            { "id": 1, "author": "Ada Lovelace", "text": "Hello, <world>" },
        ] })
    );
    assert_eq!(get_json(&addr, "/notes/2"), listed["notes"][1]);
    let missing = http(&addr, "GET", "/notes/9", &[], b"");
    assert_eq!(status(&missing), 404, "{missing}");
    assert_eq!(whole_body(&missing), r#"{"error":"no note 9"}"#);

    // The guestbook page: the component lists, the CGI program renders.
    let page = http(&addr, "GET", "/", &[], b"");
    assert_eq!(status(&page), 200, "{page}");
    for line in [
        "<p>3 notes so far, the latest first.</p>",
        "<li>#1 <b>Ada Lovelace</b>: Hello, &lt;world&gt;</li>",
        "<li>#2 <b>Grace Hopper</b>: It&#39;s easier to ask forgiveness</li>",
        "<form method=\"post\" action=\"/notes\">",
    ] {
        assert!(page.contains(line), "{line} in {page}");
    }
    drop(server);

    // The notes live in the embedded store on disk: a new server has them.
    assert!(data.path().join("kv.redb").exists());
    let again = serve_with(&example, &data_dir);
    let _stopped = Stopped(again.child);
    assert_eq!(get_json(&again.addr, "/notes"), listed);
}

/// `atoll new --template rust-wasi-http` makes a wasi:http component that
/// builds for wasm32-wasip2 and answers as its printed hints say, as a new
/// app and as a second function in it; `check` has nothing to warn about.
#[test]
fn new_wasi_http_components_build_and_serve_as_printed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (out, _, stderr) = run(atoll()
        .current_dir(d)
        .args(["new", "hi", "--template", "rust-wasi-http"]));
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("created function \"hi\" (rust-wasi-http) in"),
        "{stderr}"
    );
    assert_eq!(line_with(&stderr, "rustup"), "rustup target add wasm32-wasip2");
    let manifest = std::fs::read_to_string(d.join("hi/atoll.toml")).unwrap();
    assert!(
        manifest.contains("abi = \"wasi-http\"") && manifest.contains("cargo build --release --target wasm32-wasip2"),
        "{manifest}"
    );
    assert!(!d.join("hi/vendor").exists(), "a component needs no SDK");
    let (out, _, stderr) =
        run(atoll()
            .current_dir(d)
            .args(["new", "bye", "--template", "rust-wasi-http", "--app", "hi"]));
    assert!(out.status.success(), "{stderr}");
    let serve_line = line_with(&stderr, "serve --build");
    let curl_line = line_with(&stderr, "curl ");
    assert_eq!(curl_line, "curl 'http://127.0.0.1:3000/bye?name=you'");

    // The printed line builds both and serves; only a free port is added.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("exec {serve_line} --listen 127.0.0.1:0 --log-format json"))
        .current_dir(d)
        .env("ATOLL_CACHE_DIR", atoll_testkit::shared_cache_dir())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = serving_address(&mut lines);
    std::thread::spawn(move || for _ in lines {});
    let bye = http(&addr, "GET", "/bye?name=you", &[], b"");
    let hi = http(&addr, "GET", "/hi?name=ada", &[], b"");
    let anon = http(&addr, "GET", "/hi", &[], b"");
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(whole_body(&bye), "Hello, you, from bye!\n", "{bye}");
    assert!(bye.contains("content-type: text/plain"), "{bye}");
    assert_eq!(whole_body(&hi), "Hello, ada, from hi!\n", "{hi}");
    assert_eq!(whole_body(&anon), "Hello, world, from hi!\n", "{anon}");

    let (out, stdout, stderr) = run(atoll().arg("check").arg(d.join("hi")));
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("2 function(s), 2 route(s)"), "{stdout}");
    assert!(!stderr.contains("warning"), "{stderr}");
}

/// The body of a raw response, its chunks joined if it came in chunks (as
/// a component's streamed response does).
fn whole_body(response: &str) -> String {
    let (head, rest) = response.split_once("\r\n\r\n").unwrap_or((response, ""));
    if !head.to_ascii_lowercase().contains("\r\ntransfer-encoding: chunked") {
        return rest.to_string();
    }
    let mut out = String::new();
    let mut rest = rest;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || after.len() < size {
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..].strip_prefix("\r\n").unwrap_or(&after[size..]);
    }
    out
}

/// `inspect` lists a component's imports with the grant each one needs,
/// marking those its function lacks, for a directory and for a bundle;
/// `check` warns about the ones that will be refused; a core module given
/// as a component is named as such by both.
#[test]
fn inspect_lists_a_components_imports_and_the_grants_they_need() {
    let dir = app(r#"
[functions.comp]
abi = "wasi-http"
source = "comp.wasm"
capabilities = ["http", "kv"]
kv_stores = ["default"]
allowed_hosts = ["https://example.com"]
"#);
    std::fs::copy(guest_path("wasi-http-rust"), dir.path().join("comp.wasm")).unwrap();
    let (o, stdout, stderr) = run(atoll().args(["inspect", "--json"]).arg(dir.path()));
    assert!(o.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let functions = v["functions"].as_array().unwrap();
    let plain = functions.iter().find(|f| f["name"] == "plain").unwrap();
    assert!(plain.get("imports").is_none(), "{plain}");
    let comp = functions.iter().find(|f| f["name"] == "comp").unwrap();
    assert_eq!(comp["abi"], "wasi-http");
    let import = |prefix: &str| {
        comp["imports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"].as_str().unwrap().starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in {comp}"))
            .clone()
    };
    let outgoing = import("wasi:http/outgoing-handler@0.2.");
    assert_eq!(
        (&outgoing["grant"], &outgoing["granted"]),
        (&"http".into(), &true.into())
    );
    let config = import("wasi:config/store@");
    assert_eq!((&config["grant"], &config["granted"]), (&"vars".into(), &false.into()));
    assert_eq!(import("wasi:clocks/")["grant"], serde_json::Value::Null);

    let bundle = dir.path().join("app.atoll");
    let (o, _, stderr) = run(atoll().arg("bundle").arg(dir.path()).arg("-o").arg(&bundle));
    assert!(o.status.success(), "{stderr}");
    for source in [dir.path().to_path_buf(), bundle] {
        let (o, text, stderr) = run(atoll().arg("inspect").arg(&source));
        assert!(o.status.success(), "{stderr}");
        let line = |needle: &str| line_with(&text, needle).to_string();
        assert!(line("comp ").contains("wasi-http"), "{text}");
        assert!(text.contains("imports:"), "{text}");
        let outgoing = line("wasi:http/outgoing-handler@");
        assert!(outgoing.ends_with("needs \"http\""), "{outgoing}");
        // Both keyvalue versions it imports, on the one `kv` grant.
        for name in [
            "wasi:keyvalue/store@0.2.0-draft ",
            "wasi:keyvalue/store@0.2.0-draft2 ",
            "wasi:keyvalue/atomics@0.2.0-draft2 ",
            "wasi:keyvalue/batch@0.2.0-draft2 ",
        ] {
            let kv = line(name);
            assert!(kv.ends_with("needs \"kv\""), "{kv}");
        }
        let config = line("wasi:config/store@");
        assert!(
            config.contains("needs \"vars\"  NOT GRANTED: it sees no variables"),
            "{config}"
        );
        let logging = line("wasi:logging/logging@");
        assert!(
            logging.contains("needs \"log\"  NOT GRANTED: its messages are dropped"),
            "{logging}"
        );
        let files = line("wasi:filesystem/preopens@");
        assert!(
            files.contains("needs \"files\" (static/ only, read-only at /static)"),
            "{files}"
        );
        let clocks = line("wasi:clocks/wall-clock@");
        assert!(clocks.ends_with("provided, nothing of the host"), "{clocks}");
    }

    let (o, stdout, stderr) = run(atoll().arg("check").arg(dir.path()));
    assert!(o.status.success(), "{stderr}");
    assert!(stdout.starts_with("ok: cli-test 1.2.3: 2 function(s)"), "{stdout}");
    let warning = line_with(&stderr, "\"vars\"");
    assert!(
        warning.starts_with("warning: ")
            && warning.contains("function \"comp\" imports wasi:config/store@")
            && warning.ends_with("but is not granted \"vars\"; it sees no variables"),
        "{warning}"
    );
    assert!(
        line_with(&stderr, "\"log\"").contains("imports wasi:logging/logging@"),
        "{stderr}"
    );
    assert!(!stderr.contains("\"kv\"") && !stderr.contains("\"files\""), "{stderr}");

    std::fs::write(dir.path().join("comp.wasm"), atoll_testkit::wat("(module)")).unwrap();
    let (_, text, _) = run(atoll().arg("inspect").arg(dir.path()));
    assert!(
        line_with(&text, "imports:").contains("cannot be read: a core WebAssembly module, not a component"),
        "{text}"
    );
    let (o, _, stderr) = run(atoll().arg("check").arg(dir.path()));
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr.contains("functions.comp.source"), "{stderr}");
    assert!(
        stderr.contains("is a core WebAssembly module, not a component"),
        "{stderr}"
    );
}
