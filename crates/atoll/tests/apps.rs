//! Several apps in one server (`atoll serve --apps DIR`), through the
//! `atoll` binary with real guests: routing by base and by host, each
//! app's own variables and stores, deploys of one app by name that leave
//! the others alone (signed ones only, under `--trust`), a looping function in one app while another answers,
//! and mounts that clash refused at load.

mod common;

use atoll_testkit::guest_path;
use common::*;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const TOKEN: &str = "apps-admin-token-0123456789";

/// An app named `name` at `mount` (the `[app]` lines for base and hosts),
/// whose `POST /version` answers its `greeting` variable (= `version`),
/// `POST /kv` runs a kv command on the store `default`, and `POST /spin`
/// and `POST /panic` loop (until a 300 ms deadline) and trap.
fn app(dir: &Path, name: &str, mount: &str, version: &str) -> PathBuf {
    app_with(dir, name, mount, version, "")
}

/// `app` with `extra` at the end of its manifest (more tables).
fn app_with(dir: &Path, name: &str, mount: &str, version: &str, extra: &str) -> PathBuf {
    let dir = dir.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(guest_path("caps-fixture"), dir.join("f.wasm")).unwrap();
    std::fs::copy(guest_path("wapc-plain"), dir.join("plain.wasm")).unwrap();
    std::fs::write(
        dir.join("atoll.toml"),
        format!(
            r#"[app]
name = "{name}"
version = "{version}"
{mount}

[variables]
greeting = {{ default = "{version}" }}

[functions.f]
source = "f.wasm"
capabilities = ["vars", "kv"]
kv_stores = ["default"]

[functions.plain]
source = "plain.wasm"
timeout = "300ms"

[[routes]]
method = "POST"
path = "/version"
steps = [{{ fn = "f", op = "var" }}]

[[routes]]
method = "POST"
path = "/kv"
steps = [{{ fn = "f", op = "kv" }}]

[[routes]]
method = "POST"
path = "/spin"
steps = [{{ fn = "plain", op = "spin" }}]

[[routes]]
method = "POST"
path = "/panic"
steps = [{{ fn = "plain", op = "panic" }}]
{extra}"#
        ),
    )
    .unwrap();
    dir
}

/// `app` made into a bundle at `out`; its bytes.
fn bundle(app_dir: &Path, out: &Path) -> Vec<u8> {
    let (o, _, stderr) = run(atoll().arg("bundle").arg(app_dir).arg("-o").arg(out));
    assert!(o.status.success(), "{stderr}");
    std::fs::read(out).unwrap()
}

/// `atoll serve --apps DIR` with `extra` flags: the server and its address.
fn serve_apps(dir: &Path, extra: &[&str]) -> (Running, String) {
    let mut cmd = atoll();
    cmd.arg("serve").arg("--apps").arg(dir);
    start(&mut cmd, extra)
}

/// `cmd` (an `atoll serve`) with `extra` flags on a free port, once it serves.
fn start(cmd: &mut std::process::Command, extra: &[&str]) -> (Running, String) {
    let (child, addr, _) = start_logged(cmd, extra);
    (child, addr)
}

/// The lines of `log` whose message is `message` and whose `app` is `app`.
fn logged_by(log: &ServerLog, message: &str, app: &str) -> Vec<serde_json::Value> {
    logged(log, message).into_iter().filter(|v| v["app"] == app).collect()
}

/// `POST path` with `body` for the host `host` (the only `Host` header):
/// status and body.
fn post(addr: &str, host: &str, path: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut r = String::new();
    s.read_to_string(&mut r).unwrap();
    (status(&r), common::body(&r).to_string())
}

#[test]
fn apps_are_routed_by_base_and_by_host() {
    let dir = tempfile::tempdir().unwrap();
    let apps = dir.path().join("apps");
    app(&apps, "shop", r#"base = "/shop""#, "shop-1");
    app(&apps, "blog", r#"hosts = ["Blog.Example", "*.blog.example"]"#, "blog-1");
    app(&apps, "deep", r#"base = "/shop/deep""#, "deep-1");
    let data = dir.path().join("data");
    let (mut child, addr) = serve_apps(&apps, &["--data-dir", data.to_str().unwrap()]);

    // By base, on any host; the longest base wins; the base is stripped.
    assert_eq!(post(&addr, "127.0.0.1", "/shop/version", "greeting").1, r#""shop-1""#);
    assert_eq!(
        post(&addr, "127.0.0.1", "/shop/deep/version", "greeting").1,
        r#""deep-1""#
    );
    // By host, without port or case; a host-specific app before a host-less one.
    assert_eq!(
        post(&addr, "blog.example:8080", "/version", "greeting").1,
        r#""blog-1""#
    );
    assert_eq!(post(&addr, "WWW.Blog.Example", "/version", "greeting").1, r#""blog-1""#);
    let (code, text) = post(&addr, "blog.example", "/shop/version", "greeting");
    assert_eq!(code, 404, "blog.example is the blog's, whatever the path: {text}");
    // Nothing matches: a 404 that says so.
    let (code, text) = post(&addr, "127.0.0.1", "/version", "greeting");
    assert_eq!(code, 404, "{text}");
    assert!(text.contains("no app is mounted for host \\\"127.0.0.1\\\""), "{text}");
    let (code, _) = post(&addr, "127.0.0.1", "/shopping/version", "greeting");
    assert_eq!(code, 404, "a base is a whole segment");

    // Server-wide endpoints stay server-wide.
    let health = http(&addr, "GET", "/-/health", &[], b"");
    assert_eq!(status(&health), 200, "{health}");
    let metrics = http(&addr, "GET", "/-/metrics", &[], b"");
    let metrics = common::body(&metrics);
    for app in ["shop", "deep", "blog"] {
        assert!(
            metrics.contains(&format!(
                r#"atoll_http_requests_total{{app="{app}",method="POST",route="POST /version",status="2xx"}}"#
            )),
            "{app}: {metrics}"
        );
        assert!(
            metrics.contains(&format!(
                r#"atoll_invocations_total{{abi="wapc",app="{app}",function="f",outcome="ok"}}"#
            )),
            "{app}: {metrics}"
        );
    }
    assert!(
        metrics.contains(r#"atoll_http_requests_total{app="(none)",method="POST",route="(no route)",status="4xx"}"#),
        "{metrics}"
    );
    assert!(terminate(&mut child.0).success());
    // Each app's stores under DATA/apps/NAME.
    for app in ["shop", "deep", "blog"] {
        assert!(data.join("apps").join(app).is_dir(), "{app}");
    }
}

#[test]
fn each_app_has_its_own_variables_and_stores() {
    let dir = tempfile::tempdir().unwrap();
    let apps = dir.path().join("apps");
    app(&apps, "a", r#"base = "/a""#, "from-a");
    app(&apps, "b", r#"base = "/b""#, "from-b");
    let (mut child, addr) = serve_apps(&apps, &[]);

    assert_eq!(post(&addr, "x", "/a/version", "greeting").1, r#""from-a""#);
    assert_eq!(post(&addr, "x", "/b/version", "greeting").1, r#""from-b""#);
    let set = post(
        &addr,
        "x",
        "/a/kv",
        r#"{"op": "set", "key": "k", "value": "a's secret"}"#,
    );
    assert_eq!(set.0, 200, "{}", set.1);
    assert_eq!(
        post(&addr, "x", "/a/kv", r#"{"op": "get", "key": "k"}"#).1,
        r#""a's secret""#
    );
    // The same store name in b is another store.
    assert_eq!(post(&addr, "x", "/b/kv", r#"{"op": "get", "key": "k"}"#).1, "null");
    assert_eq!(post(&addr, "x", "/b/kv", r#"{"op": "keys"}"#).1, "[]");
    assert!(terminate(&mut child.0).success());
    // The default data directory is .atoll in the apps directory.
    assert!(apps.join(".atoll/apps/a").is_dir());
    assert!(apps.join(".atoll/apps/b").is_dir());
}

#[test]
fn one_apps_looping_and_trapping_functions_leave_another_answering() {
    let dir = tempfile::tempdir().unwrap();
    let apps = dir.path().join("apps");
    app(&apps, "hostile", r#"base = "/h""#, "h-1");
    app(&apps, "calm", r#"base = "/c""#, "c-1");
    let (mut child, addr) = serve_apps(&apps, &[]);

    let stop = Arc::new(AtomicBool::new(false));
    let attackers: Vec<_> = (0..4)
        .map(|i| {
            let (addr, stop) = (addr.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut failed = 0;
                while !stop.load(Ordering::Relaxed) {
                    let path = if i % 2 == 0 { "/h/spin" } else { "/h/panic" };
                    let (code, _) = post(&addr, "x", path, "");
                    assert!(code >= 500, "{path} answered {code}");
                    failed += 1;
                }
                failed
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    for i in 0..60 {
        let (code, text) = post(&addr, "x", "/c/version", "greeting");
        assert_eq!((code, text.as_str()), (200, r#""c-1""#), "request {i} to the calm app");
    }
    stop.store(true, Ordering::Relaxed);
    let failed: usize = attackers.into_iter().map(|t| t.join().unwrap()).sum();
    assert!(failed >= 4, "the hostile app was under load: {failed} failures");
    let metrics = http(&addr, "GET", "/-/metrics", &[], b"");
    assert!(
        common::body(&metrics)
            .contains(r#"atoll_invocations_total{abi="wapc",app="hostile",function="plain",outcome="timeout"}"#),
        "{metrics}"
    );
    assert!(terminate(&mut child.0).success());
}

#[test]
fn apps_are_deployed_added_and_removed_one_by_one() {
    let dir = tempfile::tempdir().unwrap();
    let apps = dir.path().join("apps");
    let src = dir.path().join("src");
    app(&apps, "a", r#"base = "/a""#, "a-1");
    app(&apps, "b", r#"base = "/b""#, "b-1");
    let (mut child, addr) = serve_apps(&apps, &["--admin-token", TOKEN]);
    let auth = format!("Bearer {TOKEN}");
    let admin = |method: &str, path: &str, body: &[u8]| {
        let r = http(&addr, method, path, &[("authorization", &auth)], body);
        (status(&r), common::body(&r).to_string())
    };
    let versions = || {
        (
            post(&addr, "x", "/a/version", "greeting").1,
            post(&addr, "x", "/b/version", "greeting").1,
        )
    };
    let v1 = (r#""a-1""#.to_string(), r#""b-1""#.to_string());
    assert_eq!(versions(), v1);

    // Without the token, nothing.
    let r = http(&addr, "GET", "/-/apps", &[], b"");
    assert_eq!(status(&r), 401, "{r}");
    let (code, list) = admin("GET", "/-/apps", b"");
    assert_eq!(code, 200, "{list}");
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list["apps"][0]["name"], "a");
    assert_eq!(list["apps"][0]["base"], "/a");
    assert_eq!(list["apps"][1]["version"], "b-1");

    // A bad bundle: refused, both keep serving.
    let (code, text) = admin("PUT", "/-/apps/a", b"not a bundle");
    assert_eq!(code, 422, "{text}");
    assert_eq!(versions(), v1);
    // A bundle of another name: refused, naming both.
    let b2 = bundle(&app(&src, "b", r#"base = "/b""#, "b-2"), &dir.path().join("b2.atoll"));
    let (code, text) = admin("PUT", "/-/apps/a", &b2);
    assert_eq!(code, 409, "{text}");
    assert!(text.contains(r#"name is \"b\", not \"a\""#), "{text}");
    assert_eq!(versions(), v1);

    // A deploy of a changes a alone.
    let a2 = bundle(&app(&src, "a", r#"base = "/a""#, "a-2"), &dir.path().join("a2.atoll"));
    let (code, text) = admin("PUT", "/-/apps/a", &a2);
    assert_eq!(code, 200, "{text}");
    assert_eq!(versions(), (r#""a-2""#.to_string(), r#""b-1""#.to_string()));
    let (_, one) = admin("GET", "/-/apps/b", b"");
    assert!(one.contains(r#""version":"b-1""#), "{one}");

    // A new app whose mount clashes with b's: refused, naming both.
    let clash = bundle(
        &app(&src, "c", r#"base = "/b""#, "c-1"),
        &dir.path().join("c-clash.atoll"),
    );
    let (code, text) = admin("PUT", "/-/apps/c", &clash);
    assert_eq!(code, 409, "{text}");
    assert!(
        text.contains(r#"apps \"b\" and \"c\" are mounted at the same place (base /b on any host)"#),
        "{text}"
    );
    // Elsewhere, it is added; then removed.
    let c1 = bundle(&app(&src, "c", r#"base = "/c""#, "c-1"), &dir.path().join("c.atoll"));
    let (code, text) = admin("PUT", "/-/apps/c", &c1);
    assert_eq!(code, 200, "{text}");
    assert_eq!(post(&addr, "x", "/c/version", "greeting").1, r#""c-1""#);
    let metrics = || common::body(&http(&addr, "GET", "/-/metrics", &[], b"")).to_string();
    assert!(metrics().contains(r#"app="c""#), "{}", metrics());
    let (code, text) = admin("DELETE", "/-/apps/c", b"");
    assert_eq!(code, 200, "{text}");
    // Its series go with it; the others stay.
    let after = metrics();
    assert!(!after.contains(r#"app="c""#), "{after}");
    assert!(after.contains(r#"app="a""#), "{after}");
    assert_eq!(post(&addr, "x", "/c/version", "greeting").0, 404);
    assert_eq!(admin("DELETE", "/-/apps/c", b"").0, 404);
    assert_eq!(versions(), (r#""a-2""#.to_string(), r#""b-1""#.to_string()));

    // With several apps, /-/bundle does not say which.
    let (code, text) = admin("PUT", "/-/bundle", &a2);
    assert_eq!(code, 409, "{text}");
    assert!(text.contains("PUT /-/apps/NAME"), "{text}");
    assert!(terminate(&mut child.0).success());
}

#[test]
fn apps_with_one_name_or_one_mount_are_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let clash = dir.path().join("clash");
    app(&clash, "one", r#"base = "/x""#, "1");
    app(&clash, "two", r#"base = "/x/""#, "1");
    let (o, _, stderr) = run(atoll().arg("serve").arg("--apps").arg(&clash));
    assert!(!o.status.success());
    assert!(
        stderr.contains(r#"apps "one" and "two" are mounted at the same place (base /x on any host)"#),
        "{stderr}"
    );

    let hosts = dir.path().join("hosts");
    app(&hosts, "one", r#"hosts = ["a.example", "b.example"]"#, "1");
    app(&hosts, "two", r#"hosts = ["B.example"]"#, "1");
    let (o, _, stderr) = run(atoll().arg("serve").arg("--apps").arg(&hosts));
    assert!(!o.status.success());
    assert!(stderr.contains("(base / on host b.example)"), "{stderr}");

    // The same name twice, from a directory and a bundle.
    let twice = dir.path().join("twice");
    let dup = app(&twice, "dup", r#"base = "/1""#, "1");
    let other = app(&dir.path().join("src"), "dup", r#"base = "/2""#, "1");
    bundle(&other, &twice.join("dup-again.atoll"));
    let (o, _, stderr) = run(atoll().arg("serve").arg("--apps").arg(&twice));
    assert!(!o.status.success());
    assert!(stderr.contains(r#"two apps are named "dup""#), "{stderr}");
    assert!(stderr.contains(&dup.display().to_string()), "{stderr}");

    // A mount that is not one: the file, line and key.
    let bad = dir.path().join("bad");
    app(&bad, "bad", r#"base = "/-/admin""#, "1");
    let (o, _, stderr) = run(atoll().args(["check"]).arg(bad.join("bad")));
    assert!(!o.status.success());
    assert!(stderr.contains("atoll.toml:4"), "{stderr}");
    assert!(stderr.contains("app.base"), "{stderr}");
    assert!(stderr.contains("/-/"), "{stderr}");

    // --watch follows one app.
    let (o, _, stderr) = run(atoll().arg("serve").arg("--apps").arg(&clash).arg("--watch"));
    assert!(!o.status.success());
    assert!(stderr.contains("--watch and --build serve one app"), "{stderr}");

    // An empty directory has no apps to serve.
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let (o, _, stderr) = run(atoll().arg("serve").arg("--apps").arg(&empty));
    assert!(!o.status.success());
    assert!(stderr.contains("no apps there"), "{stderr}");
}

#[test]
fn one_app_honours_its_base_and_shows_its_mount() {
    let dir = tempfile::tempdir().unwrap();
    let one = app(dir.path(), "solo", r#"base = "/solo""#, "s-1");
    let (o, stdout, stderr) = run(atoll().args(["inspect", "--json"]).arg(&one));
    assert!(o.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["mount"], serde_json::json!({"base": "/solo", "hosts": []}));

    let (mut child, addr) = start(atoll().arg("serve").arg(&one), &[]);
    assert_eq!(post(&addr, "x", "/solo/version", "greeting").1, r#""s-1""#);
    let (code, text) = post(&addr, "x", "/version", "greeting");
    assert_eq!(code, 404, "{text}");
    assert!(
        text.contains(r#"no app is mounted for host \"x\" and path /version"#),
        "{text}"
    );
    assert!(terminate(&mut child.0).success());

    // Two apps named on the command line are served together.
    let other = app(dir.path(), "duo", r#"base = "/duo""#, "d-1");
    let data = dir.path().join("data");
    let (mut child, addr) = start(
        atoll().arg("serve").arg(&one).arg(&other),
        &["--data-dir", data.to_str().unwrap()],
    );
    assert_eq!(post(&addr, "x", "/solo/version", "greeting").1, r#""s-1""#);
    assert_eq!(post(&addr, "x", "/duo/version", "greeting").1, r#""d-1""#);
    assert!(terminate(&mut child.0).success());
}

#[test]
fn app_deploys_under_trust_take_only_signed_bundles() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (o, _, e) = run(atoll().arg("keygen").arg(d.join("release")));
    assert!(o.status.success(), "{e}");
    let sign = |src: &Path, out: &str| {
        let (o, _, e) = run(atoll()
            .arg("bundle")
            .arg(src)
            .arg("--sign")
            .arg(d.join("release.key"))
            .arg("-o")
            .arg(d.join(out)));
        assert!(o.status.success(), "{e}");
        std::fs::read(d.join(out)).unwrap()
    };
    let apps = d.join("apps");
    std::fs::create_dir_all(&apps).unwrap();
    let src = d.join("src");
    sign(&app(&src, "a", r#"base = "/a""#, "a-1"), "apps/a.atoll");
    sign(&app(&src, "b", r#"base = "/b""#, "b-1"), "apps/b.atoll");
    let trust = d.join("release.pub");
    let (mut child, addr) = serve_apps(&apps, &["--admin-token", TOKEN, "--trust", trust.to_str().unwrap()]);
    let auth = format!("Bearer {TOKEN}");

    let unsigned = bundle(&app(&src, "a", r#"base = "/a""#, "a-2"), &d.join("unsigned.atoll"));
    let r = http(&addr, "PUT", "/-/apps/a", &[("authorization", &auth)], &unsigned);
    assert_eq!(status(&r), 422, "{r}");
    assert!(common::body(&r).contains("not signed"), "{r}");
    assert_eq!(post(&addr, "x", "/a/version", "greeting").1, r#""a-1""#);

    let signed = sign(&src.join("a"), "signed.atoll");
    let r = http(&addr, "PUT", "/-/apps/a", &[("authorization", &auth)], &signed);
    assert_eq!(status(&r), 200, "{r}");
    assert_eq!(post(&addr, "x", "/a/version", "greeting").1, r#""a-2""#);
    assert_eq!(post(&addr, "x", "/b/version", "greeting").1, r#""b-1""#);
    assert!(terminate(&mut child.0).success());
}

/// Tables for `app_with`: a secret `api_key` that `POST /secret` reads
/// (its function lists it), and a plain `region`.
const SECRET_AND_REGION: &str = r#"
[variables.api_key]
secret = true

[variables.region]
default = "nowhere"

[functions.s]
source = "f.wasm"
capabilities = ["vars"]
secrets = ["api_key"]

[[routes]]
method = "POST"
path = "/secret"
steps = [{ fn = "s", op = "var" }]
"#;

#[test]
fn each_app_takes_its_variables_and_secrets_from_its_own_scope_alone() {
    let dir = tempfile::tempdir().unwrap();
    let apps = dir.path().join("apps");
    let src = dir.path().join("src");
    app_with(&apps, "a", r#"base = "/a""#, "a-1", SECRET_AND_REGION);
    app_with(&apps, "b-2", r#"base = "/b""#, "b-1", SECRET_AND_REGION);
    let rt = dir.path().join("rt.toml");
    std::fs::write(
        &rt,
        "[apps.a.variables]\nregion = \"eu\"\napi_key = \"from-a's-file\"\n\n[apps.b-2.variables]\nregion = \"us\"\n",
    )
    .unwrap();
    let rt = rt.to_str().unwrap();
    let mut cmd = atoll();
    cmd.arg("serve")
        .arg("--apps")
        .arg(&apps)
        .env("ATOLL_APP_A_VAR_API_KEY", "a-secret")
        .env("ATOLL_APP_B_2_VAR_REGION", "us-east");
    let (mut child, addr) = start(&mut cmd, &["--runtime-config", rt, "--admin-token", TOKEN]);
    let read = |app: &str, route: &str, var: &str| post(&addr, "x", &format!("/{app}/{route}"), var).1;

    // Each app's own environment wins over its own table.
    assert_eq!(read("a", "version", "region"), r#""eu""#);
    assert_eq!(read("b", "version", "region"), r#""us-east""#);
    assert_eq!(read("a", "secret", "api_key"), r#""a-secret""#);
    // b declares a secret of the same name; a's value never reaches it.
    assert_eq!(read("b", "secret", "api_key"), "null");
    // A deploy of a keeps a's scope.
    let a2 = bundle(
        &app_with(&src, "a", r#"base = "/a""#, "a-2", SECRET_AND_REGION),
        &dir.path().join("a2.atoll"),
    );
    let auth = format!("Bearer {TOKEN}");
    let r = http(&addr, "PUT", "/-/apps/a", &[("authorization", &auth)], &a2);
    assert_eq!(status(&r), 200, "{r}");
    assert_eq!(read("a", "version", "greeting"), r#""a-2""#);
    assert_eq!(read("a", "secret", "api_key"), r#""a-secret""#);
    assert_eq!(read("a", "version", "region"), r#""eu""#);
    assert_eq!(read("b", "secret", "api_key"), "null");
    assert!(terminate(&mut child.0).success());

    // With several apps, values meant for every app are refused, naming
    // where they are, and no value is printed.
    let (o, _, stderr) = run(atoll()
        .arg("serve")
        .arg("--apps")
        .arg(&apps)
        .args(["--listen", "127.0.0.1:0", "--runtime-config", rt])
        .env("ATOLL_VAR_API_KEY", "leaked"));
    assert!(!o.status.success());
    assert!(
        stderr.contains("ATOLL_VAR_API_KEY is set, but this server hosts several apps")
            && stderr.contains("ATOLL_APP_<APP>_VAR_API_KEY"),
        "{stderr}"
    );
    assert!(!stderr.contains("leaked"), "{stderr}");
    let wide = dir.path().join("wide.toml");
    std::fs::write(&wide, "data_dir = \"d\"\n\n[variables]\napi_key = \"for-everyone\"\n").unwrap();
    let (o, _, stderr) = run(atoll()
        .arg("serve")
        .arg("--apps")
        .arg(&apps)
        .args(["--listen", "127.0.0.1:0", "--runtime-config"])
        .arg(&wide));
    assert!(!o.status.success());
    assert!(
        stderr.contains("wide.toml:3:1: variables: this server hosts several apps")
            && stderr.contains("[apps.NAME.variables]"),
        "{stderr}"
    );
    assert!(!stderr.contains("for-everyone"), "{stderr}");
}

#[test]
fn each_app_has_its_own_kv_runtime_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let apps = dir.path().join("apps");
    app(&apps, "a", r#"base = "/a""#, "a-1");
    app(&apps, "b", r#"base = "/b""#, "b-1");
    let rt = dir.path().join("rt.toml");
    // The server's default for every store is memory; b's own is redb.
    std::fs::write(
        &rt,
        "[kv.default]\nbackend = \"memory\"\n\n[apps.b.kv.default]\nbackend = \"redb\"\npath = \"own.redb\"\n\n[apps.gone.variables]\nx = \"y\"\n",
    )
    .unwrap();
    let rt = rt.to_str().unwrap();
    let set = r#"{"op": "set", "key": "k", "value": "kept?"}"#;
    let get = r#"{"op": "get", "key": "k"}"#;
    for round in 0..2 {
        let mut cmd = atoll();
        cmd.arg("serve").arg("--apps").arg(&apps);
        let (mut child, addr, log) = start_logged(&mut cmd, &["--runtime-config", rt]);
        let a = logged_by(&log, "kv store", "a");
        assert_eq!(
            (a.len(), &a[0]["store"], &a[0]["backend"]),
            (1, &"default".into(), &"memory".into()),
            "{a:?}"
        );
        let b = logged_by(&log, "kv store", "b");
        assert_eq!(b[0]["backend"], "redb", "{b:?}");
        assert!(b[0]["at"].as_str().unwrap().ends_with("apps/b/own.redb"), "{b:?}");
        // A table for an app not served is a warning naming it.
        let warned = log.lock().unwrap().iter().any(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.contains("[apps.gone] names no app served"))
        });
        assert!(warned, "{:?}", log.lock().unwrap());
        if round == 0 {
            for app in ["a", "b"] {
                assert_eq!(post(&addr, "x", &format!("/{app}/kv"), set).0, 200);
            }
        } else {
            // After a restart, a's store (memory) is empty; b's (redb) kept its key.
            assert_eq!(post(&addr, "x", "/a/kv", get).1, "null");
            assert_eq!(post(&addr, "x", "/b/kv", get).1, r#""kept?""#);
        }
        assert!(terminate(&mut child.0).success());
    }
    assert!(apps.join(".atoll/apps/b/own.redb").is_file());
}

/// A loopback upstream answering every request with `body`; its origin.
fn upstream(body: &'static str) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut head = [0u8; 4096];
            let _ = std::io::Read::read(&mut stream, &mut head);
            let _ = std::io::Write::write_all(
                &mut stream,
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            );
        }
    });
    origin
}

#[test]
fn each_app_has_its_own_outbound_limits() {
    let origin = upstream("a response of forty bytes, give or take");
    let grant = format!(
        "\n[functions.out]\nsource = \"f.wasm\"\ncapabilities = [\"http\"]\nallowed_hosts = [\"{origin}\"]\n\n\
         [[routes]]\nmethod = \"POST\"\npath = \"/out\"\nsteps = [{{ fn = \"out\", op = \"fetch\" }}]\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let apps = dir.path().join("apps");
    app_with(&apps, "a", r#"base = "/a""#, "a-1", &grant);
    app_with(&apps, "b", r#"base = "/b""#, "b-1", &grant);
    // The server allows 1 KiB; a's own table allows 16 bytes.
    let rt = dir.path().join("rt.toml");
    std::fs::write(
        &rt,
        "[http]\nmax_response = \"1KiB\"\n\n[apps.a.http]\nmax_response = \"16B\"\n",
    )
    .unwrap();
    let mut cmd = atoll();
    cmd.arg("serve").arg("--apps").arg(&apps);
    let (mut child, addr) = start(&mut cmd, &["--runtime-config", rt.to_str().unwrap()]);
    let call = format!(r#"{{"url": "{origin}/"}}"#);
    let (code, text) = post(&addr, "x", "/b/out", &call);
    assert_eq!(code, 200, "{text}");
    assert!(text.contains("forty bytes"), "{text}");
    let (code, text) = post(&addr, "x", "/a/out", &call);
    assert_ne!(code, 200, "{text}");
    assert!(
        text.contains("larger than the limit of 16 bytes"),
        "the error names a's limit: {text}"
    );
    assert!(terminate(&mut child.0).success());
}

#[test]
fn a_misconfigured_app_table_is_refused_naming_the_app_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let apps = dir.path().join("apps");
    app(&apps, "a", r#"base = "/a""#, "a-1");
    app(&apps, "b", r#"base = "/b""#, "b-1");
    let cases = [
        (
            "[apps.b.kv.default]\nbackend = \"mongo\"\n",
            "rt.toml:2:11: apps.b.kv.default.backend: unknown key-value backend \"mongo\"",
        ),
        (
            "[apps.b.kv.default]\nbackend = \"redis\"\nurl = \"http://r\"\n",
            "rt.toml:3:7: apps.b.kv.default.url: a Redis URL starts with redis://",
        ),
        (
            "[apps.b.msg]\nbackend = \"nats\"\n",
            "rt.toml:1:9: apps.b.msg: an app's table holds only variables, kv, sql, http",
        ),
        (
            "[apps.a]\nvariables = \"x\"\n",
            "rt.toml:2:1: apps.a.variables: variables are a table of strings",
        ),
    ];
    for (text, expected) in cases {
        let rt = dir.path().join("rt.toml");
        std::fs::write(&rt, text).unwrap();
        let (o, _, stderr) = run(atoll()
            .arg("serve")
            .arg("--apps")
            .arg(&apps)
            .args(["--listen", "127.0.0.1:0", "--runtime-config"])
            .arg(&rt));
        assert!(!o.status.success(), "{text}");
        assert!(stderr.contains(expected), "{text}\n{stderr}");
    }
}

/// Tables for `app_with`: a schedule counting its runs in `ticks` every
/// 200 ms, a subscription running each message on `jobs.*` as a kv
/// command, and `POST /publish`.
const TRIGGERS: &str = r#"
[functions.p]
source = "f.wasm"
capabilities = ["msg"]
publish_topics = ["jobs.*"]

[[routes]]
method = "POST"
path = "/publish"
steps = [{ fn = "p", op = "publish" }]

[[schedules]]
name = "tick"
every = "200ms"
state = { cmd = '{"op":"increment","key":"ticks","by":1}' }
steps = [{ fn = "f", op = "kv", input = "cmd" }]

[[subscriptions]]
topic = "jobs.*"
steps = [{ fn = "f", op = "kv" }]
"#;

#[test]
fn every_apps_triggers_run_and_a_deploy_restarts_only_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let apps = dir.path().join("apps");
    let src = dir.path().join("src");
    app_with(&apps, "a", r#"base = "/a""#, "a-1", TRIGGERS);
    app_with(&apps, "b", r#"base = "/b""#, "b-1", TRIGGERS);
    let mut cmd = atoll();
    cmd.arg("serve").arg("--apps").arg(&apps);
    let (mut child, addr, log) = start_logged(&mut cmd, &["--admin-token", TOKEN]);
    let count = |app: &str, key: &str| -> u64 {
        let (code, body) = post(
            &addr,
            "x",
            &format!("/{app}/kv"),
            &format!(r#"{{"op": "get", "key": "{key}"}}"#),
        );
        assert_eq!(code, 200, "{body}");
        serde_json::from_str::<Option<String>>(&body)
            .unwrap()
            .map_or(0, |n| n.parse().unwrap())
    };
    let until = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !done() {
            assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    until("both schedules", &|| {
        count("a", "ticks") >= 2 && count("b", "ticks") >= 2
    });
    assert!(!logged_by(&log, "schedule ran", "a").is_empty());
    assert!(!logged_by(&log, "schedule ran", "b").is_empty());

    // A message published in a reaches a's subscription, not b's.
    let job = r#"{"topic": "jobs.one", "payload": "{\"op\":\"increment\",\"key\":\"jobs\",\"by\":1}"}"#;
    assert_eq!(post(&addr, "x", "/a/publish", job), (200, "published".to_string()));
    until("a's subscription", &|| count("a", "jobs") == 1);
    assert_eq!(post(&addr, "x", "/b/publish", job).0, 200);
    until("b's subscription", &|| count("b", "jobs") == 1);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        (count("a", "jobs"), count("b", "jobs")),
        (1, 1),
        "each message once, in its own app"
    );

    // Deploying a restarts a's triggers alone: b's schedule keeps ticking
    // through it, and a's runs again on the new version.
    let a2 = bundle(
        &app_with(&src, "a", r#"base = "/a""#, "a-2", TRIGGERS),
        &dir.path().join("a2.atoll"),
    );
    let b_runs = logged_by(&log, "schedule ran", "b").len();
    let a_ticks = count("a", "ticks");
    let auth = format!("Bearer {TOKEN}");
    let r = http(&addr, "PUT", "/-/apps/a", &[("authorization", &auth)], &a2);
    assert_eq!(status(&r), 200, "{r}");
    assert_eq!(post(&addr, "x", "/a/version", "greeting").1, r#""a-2""#);
    until("a's schedule on a-2", &|| count("a", "ticks") >= a_ticks + 2);
    until("b's schedule, still", &|| {
        logged_by(&log, "schedule ran", "b").len() >= b_runs + 3
    });
    // b's subscription was left alone; a's follows a-2.
    assert_eq!(post(&addr, "x", "/b/publish", job).0, 200);
    until("b's subscription, still", &|| count("b", "jobs") == 2);
    assert_eq!(post(&addr, "x", "/a/publish", job).0, 200);
    until("a-2's subscription", &|| count("a", "jobs") == 2);
    // Still no message crosses.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!((count("a", "jobs"), count("b", "jobs")), (2, 2));
    assert!(terminate(&mut child.0).success());
}
