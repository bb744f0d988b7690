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
"#
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

/// A server the test started, killed if the test fails before stopping it.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// `atoll serve --apps DIR` with `extra` flags: the server and its address.
fn serve_apps(dir: &Path, extra: &[&str]) -> (Running, String) {
    let mut cmd = atoll();
    cmd.arg("serve").arg("--apps").arg(dir);
    start(&mut cmd, extra)
}

/// `cmd` (an `atoll serve`) with `extra` flags on a free port, once it serves.
fn start(cmd: &mut std::process::Command, extra: &[&str]) -> (Running, String) {
    let mut child = cmd
        .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
        .args(extra)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::BufRead;
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = serving_address(&mut lines);
    std::thread::spawn(move || for _ in lines {});
    (Running(child), addr)
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
    let (code, text) = admin("DELETE", "/-/apps/c", b"");
    assert_eq!(code, 200, "{text}");
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
