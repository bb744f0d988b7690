//! Bundles, deploys, hot swap, graceful shutdown and `--watch`, through the
//! `atoll` binary.

mod common;

use atoll_testkit::guest_path;
use common::*;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const TOKEN: &str = "test-admin-token-0123456789";

/// An app whose `POST /version` answers its `greeting` variable.
fn app(dir: &Path, greeting: &str) {
    std::fs::copy(guest_path("caps-fixture"), dir.join("f.wasm")).unwrap();
    std::fs::create_dir_all(dir.join("static")).unwrap();
    std::fs::write(dir.join("static/hello.txt"), "static hello").unwrap();
    std::fs::write(
        dir.join("atoll.toml"),
        format!(
            r#"[app]
name = "deployed"
version = "{greeting}"

[variables]
greeting = {{ default = "{greeting}" }}

[functions.f]
source = "f.wasm"
capabilities = ["vars", "files"]

[[routes]]
method = "POST"
path = "/version"
steps = [{{ fn = "f", op = "var" }}]

[[routes]]
method = "POST"
path = "/sleep"
steps = [{{ fn = "f", op = "sleep" }}]

[[routes]]
method = "POST"
path = "/file"
steps = [{{ fn = "f", op = "file" }}]
"#
        ),
    )
    .unwrap();
}

fn bundle(dir: &Path, out: &Path) -> Vec<u8> {
    let (o, _, stderr) = run(atoll().arg("bundle").arg(dir).arg("-o").arg(out));
    assert!(o.status.success(), "{stderr}");
    std::fs::read(out).unwrap()
}

fn version(addr: &str) -> String {
    body(&http(addr, "POST", "/version", &[], b"greeting")).to_string()
}

#[test]
fn a_bundle_is_served_and_inspected() {
    let (src, out) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    app(src.path(), "v1");
    let file = out.path().join("app.atoll");
    bundle(src.path(), &file);
    drop(src); // the bundle stands alone

    let (o, stdout, stderr) = run(atoll().args(["inspect", "--json"]).arg(&file));
    assert!(o.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["app"], "deployed");
    assert_eq!(v["functions"][0]["capabilities"], serde_json::json!(["vars", "files"]));
    assert_eq!(
        v["functions"][0]["module"]["size"],
        std::fs::metadata(guest_path("caps-fixture")).unwrap().len()
    );
    assert_eq!(v["routes"][0]["route"], "POST /version");
    assert_eq!(v["static_files"][0]["path"], "hello.txt");
    let (_, text, _) = run(atoll().arg("inspect").arg(&file));
    assert!(
        text.contains("grants: vars, files") && text.contains("POST /sleep"),
        "{text}"
    );

    let mut served = serve_with(&file, &[]);
    assert_eq!(version(&served.addr), "\"v1\"");
    assert_eq!(
        body(&http(&served.addr, "POST", "/file", &[], b"hello.txt")),
        "static hello"
    );
    assert!(terminate(&mut served.child).success());
}

/// Clients hammer the server while new versions are deployed: no request
/// fails, and once a deploy has answered, every new request sees it.
#[test]
fn deploys_swap_versions_under_load_without_a_failed_request() {
    let dir = tempfile::tempdir().unwrap();
    let versions: Vec<Vec<u8>> = ["v1", "v2", "v3"]
        .iter()
        .map(|v| {
            app(dir.path(), v);
            bundle(dir.path(), &dir.path().join(format!("{v}.atoll")))
        })
        .collect();
    let mut served = serve_with(&dir.path().join("v1.atoll"), &["--admin-token", TOKEN]);
    let addr = served.addr.clone();
    assert_eq!(version(&addr), "\"v1\"");

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let clients: Vec<_> = (0..6)
        .map(|_| {
            let (addr, stop, ok, failed) = (addr.clone(), stop.clone(), ok.clone(), failed.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let r = http(&addr, "POST", "/version", &[], b"greeting");
                    if status(&r) == 200 && body(&r).starts_with("\"v") {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    for (bytes, expected) in versions[1..].iter().zip(["\"v2\"", "\"v3\""]) {
        let r = http(
            &addr,
            "PUT",
            "/-/bundle",
            &[("authorization", &format!("Bearer {TOKEN}"))],
            bytes,
        );
        assert_eq!(status(&r), 200, "{r}");
        let summary: serde_json::Value = serde_json::from_str(body(&r)).unwrap();
        assert_eq!(format!("\"{}\"", summary["version"].as_str().unwrap()), expected);
        for _ in 0..5 {
            assert_eq!(
                version(&addr),
                expected,
                "after the deploy answered, new requests see it"
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0, "requests failed across the swaps");
    assert!(ok.load(Ordering::Relaxed) > 50, "the clients kept being served");
    assert!(terminate(&mut served.child).success());
}

#[test]
fn the_admin_endpoint_needs_its_token_and_refuses_bad_bundles() {
    let dir = tempfile::tempdir().unwrap();
    app(dir.path(), "v1");
    let good = bundle(dir.path(), &dir.path().join("v1.atoll"));
    let mut served = serve_with(&dir.path().join("v1.atoll"), &["--admin-token", TOKEN]);
    let addr = served.addr.clone();
    let auth = format!("Bearer {TOKEN}");

    let r = http(&addr, "PUT", "/-/bundle", &[], &good);
    assert_eq!(status(&r), 401, "{r}");
    let r = http(
        &addr,
        "PUT",
        "/-/bundle",
        &[("authorization", "Bearer wrong-token-0123456789")],
        &good,
    );
    assert_eq!(status(&r), 401, "{r}");

    let mut tampered = good.clone();
    let n = tampered.len();
    tampered[n / 2] ^= 0xff;
    for (bad, why) in [
        (&tampered, "damaged"),
        (&b"not a bundle".to_vec(), "not a readable bundle"),
    ] {
        let r = http(&addr, "PUT", "/-/bundle", &[("authorization", &auth)], bad);
        assert_eq!(status(&r), 422, "{r}");
        assert!(
            body(&r).contains(why) || body(&r).contains("SHA-256") || body(&r).contains("zip"),
            "{r}"
        );
        assert_eq!(version(&addr), "\"v1\"", "the running version keeps serving");
    }

    // A bundle whose module is not a waPC guest is refused just the same.
    app(dir.path(), "broken");
    std::fs::write(dir.path().join("f.wasm"), atoll_testkit::wat("(module)")).unwrap();
    let broken = bundle(dir.path(), &dir.path().join("broken.atoll"));
    let r = http(&addr, "PUT", "/-/bundle", &[("authorization", &auth)], &broken);
    assert_eq!(status(&r), 422, "{r}");
    assert!(body(&r).contains("__guest_call"), "{r}");
    assert_eq!(version(&addr), "\"v1\"");
    assert!(terminate(&mut served.child).success());

    // Without a token the endpoint does not exist.
    let mut plain = serve_with(&dir.path().join("v1.atoll"), &[]);
    assert_eq!(
        status(&http(
            &plain.addr,
            "PUT",
            "/-/bundle",
            &[("authorization", &auth)],
            &good
        )),
        404
    );
    assert!(terminate(&mut plain.child).success());
}

#[test]
fn shutdown_drains_in_flight_requests() {
    let dir = tempfile::tempdir().unwrap();
    app(dir.path(), "v1");
    let mut served = serve(dir.path());
    let addr = served.addr.clone();
    let slow = std::thread::spawn(move || http(&addr, "POST", "/sleep", &[], b"800"));
    std::thread::sleep(Duration::from_millis(250));
    let started = Instant::now();
    let exit = terminate(&mut served.child);
    let reply = slow.join().unwrap();
    assert_eq!(status(&reply), 200, "{reply}");
    assert_eq!(body(&reply), "slept 800");
    assert!(exit.success(), "{exit}");
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "it waited for the request"
    );
    assert!(
        std::net::TcpStream::connect(&served.addr).is_err(),
        "no longer accepting"
    );
}

fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn watch_reloads_on_change_and_rides_out_mistakes() {
    let dir = tempfile::tempdir().unwrap();
    app(dir.path(), "v1");
    let mut served = serve_with(dir.path(), &["--watch"]);
    let addr = served.addr.clone();
    assert_eq!(version(&addr), "\"v1\"");

    app(dir.path(), "v2");
    wait_until("the edit to be served", || version(&addr) == "\"v2\"");

    // A broken manifest: reported, and the previous version keeps serving.
    std::fs::write(
        dir.path().join("atoll.toml"),
        "[app]\nname = \"broken\nthis is not toml",
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(version(&addr), "\"v2\"");

    app(dir.path(), "v3");
    wait_until("the fix to be served", || version(&addr) == "\"v3\"");
    std::fs::write(dir.path().join("static/hello.txt"), "changed").unwrap();
    wait_until("the static file to change", || {
        body(&http(&addr, "POST", "/file", &[], b"hello.txt")) == "changed"
    });
    assert!(terminate(&mut served.child).success());
}

/// A change to a watched source runs the function's build, then reloads.
#[test]
fn watch_rebuilds_when_a_watched_source_changes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("src")).unwrap();
    // The plain guest has no `echo` operation; the capability fixture does,
    // so which module is served shows in the answer.
    std::fs::copy(guest_path("wapc-plain"), d.join("src/guest.wasm")).unwrap();
    std::fs::write(
        d.join("atoll.toml"),
        r#"[app]
name = "rebuilt"

[functions.f]
source = "target/f.wasm"
build = { command = "mkdir -p target && cp src/guest.wasm target/f.wasm", watch = ["src/*.wasm"] }

[[routes]]
method = "POST"
path = "/"
steps = [{ fn = "f", op = "echo" }]
"#,
    )
    .unwrap();
    let mut served = serve_with(d, &["--watch", "--build"]);
    let addr = served.addr.clone();
    let before = http(&addr, "POST", "/", &[], b"abc");
    assert_eq!(status(&before), 500, "{before}");

    std::fs::copy(guest_path("caps-fixture"), d.join("src/next.wasm")).unwrap();
    std::fs::rename(d.join("src/next.wasm"), d.join("src/guest.wasm")).unwrap();
    wait_until("the rebuilt module to be served", || {
        let r = http(&addr, "POST", "/", &[], b"abc");
        status(&r) == 200 && body(&r) == "abc"
    });
    assert_eq!(
        std::fs::read(d.join("target/f.wasm")).unwrap(),
        std::fs::read(guest_path("caps-fixture")).unwrap()
    );
    assert!(terminate(&mut served.child).success());
}

/// `--watch` on a bundle reloads when the bundle file is replaced.
#[test]
fn watch_reloads_a_replaced_bundle() {
    let dir = tempfile::tempdir().unwrap();
    app(dir.path(), "v1");
    let file = dir.path().join("app.atoll");
    bundle(dir.path(), &file);
    let mut served = serve_with(&file, &["--watch"]);
    let addr = served.addr.clone();
    assert_eq!(version(&addr), "\"v1\"");
    app(dir.path(), "v2");
    let next = dir.path().join("next.atoll");
    bundle(dir.path(), &next);
    std::fs::rename(&next, &file).unwrap();
    wait_until("the new bundle to be served", || version(&addr) == "\"v2\"");
    assert!(terminate(&mut served.child).success());
}

/// `atoll keygen` in `dir`: the key id it printed.
fn keygen(dir: &Path, name: &str) -> String {
    let (o, _, stderr) = run(atoll().arg("keygen").arg(dir.join(name)));
    assert!(o.status.success(), "{stderr}");
    stderr.split_whitespace().nth(1).expect("`key <id>` first").to_string()
}

fn signed_bundle(dir: &Path, key: &Path, out: &Path) -> Vec<u8> {
    let (o, _, stderr) = run(atoll().arg("bundle").arg(dir).arg("--sign").arg(key).arg("-o").arg(out));
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("signed by key"), "{stderr}");
    std::fs::read(out).unwrap()
}

#[test]
fn keygen_signs_bundles_that_inspect_shows_and_trust_checks() {
    let (src, keys) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    app(src.path(), "v1");
    let id = keygen(keys.path(), "release");
    assert_eq!(id.len(), 16, "{id}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(keys.path().join("release.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let (o, _, stderr) = run(atoll().arg("keygen").arg(keys.path().join("release")));
    assert!(!o.status.success() && stderr.contains("already exists"), "{stderr}");

    let file = src.path().join("app.atoll");
    signed_bundle(src.path(), &keys.path().join("release.key"), &file);

    // Without --trust: the signer is shown, unverified.
    let (o, text, stderr) = run(atoll().arg("inspect").arg(&file));
    assert!(o.status.success(), "{stderr}");
    assert!(text.contains(&format!("signature  key {id} (unverified")), "{text}");
    let (_, json, _) = run(atoll().args(["inspect", "--json"]).arg(&file));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["bundle"]["signer"]["key_id"], id.as_str());
    assert_eq!(v["bundle"]["signer"]["trusted"], false);
    assert_eq!(v["bundle"]["signer"]["signature_valid"], true);

    // With it: verified, or refused when the key is another.
    let (o, text, stderr) = run(atoll().arg("inspect").arg(&file).arg("--trust").arg(keys.path()));
    assert!(o.status.success(), "{stderr}");
    assert!(text.contains("(verified: trusted key"), "{text}");
    let other = tempfile::tempdir().unwrap();
    let other_id = keygen(other.path(), "other");
    let (o, _, stderr) = run(atoll()
        .arg("inspect")
        .arg(&file)
        .arg("--trust")
        .arg(other.path().join("other.pub")));
    assert!(!o.status.success());
    assert!(
        stderr.contains(&file.display().to_string())
            && stderr.contains(&format!(
                "signed by key {id}, which is not trusted here (trusted: {other_id})"
            )),
        "{stderr}"
    );

    // An unsigned bundle, and an app directory, are refused by serve --trust.
    let unsigned = src.path().join("unsigned.atoll");
    bundle(src.path(), &unsigned);
    let trust = keys.path().join("release.pub");
    for (what, says) in [
        (&unsigned, "the bundle is not signed"),
        (&src.path().to_path_buf(), "is an app directory"),
    ] {
        let (o, _, stderr) = run(atoll()
            .arg("serve")
            .arg(what)
            .args(["--listen", "127.0.0.1:0", "--trust"])
            .arg(&trust));
        assert!(!o.status.success(), "{stderr}");
        assert!(
            stderr.contains(says) && stderr.contains(&what.display().to_string()),
            "{stderr}"
        );
    }
    // ATOLL_TRUST is --trust from the environment.
    let (o, _, stderr) = run(atoll()
        .arg("serve")
        .arg(&unsigned)
        .args(["--listen", "127.0.0.1:0"])
        .env("ATOLL_TRUST", keys.path()));
    assert!(
        !o.status.success() && stderr.contains("the bundle is not signed"),
        "{stderr}"
    );
    // A private key given to --trust is named as such.
    let (o, _, stderr) = run(atoll()
        .arg("serve")
        .arg(&file)
        .args(["--listen", "127.0.0.1:0", "--trust"])
        .arg(keys.path().join("release.key")));
    assert!(!o.status.success() && stderr.contains("is a private key"), "{stderr}");

    let mut served = serve_with(&file, &["--trust", &trust.display().to_string()]);
    assert_eq!(version(&served.addr), "\"v1\"");
    assert!(terminate(&mut served.child).success());
}

#[test]
fn put_bundle_under_trust_refuses_what_is_not_signed_by_a_trusted_key() {
    let (src, keys) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let id = keygen(keys.path(), "release");
    let other_id = keygen(keys.path(), "other");
    let (release, other) = (keys.path().join("release.key"), keys.path().join("other.key"));
    let trust = keys.path().join("release.pub");
    app(src.path(), "v1");
    let v1 = src.path().join("v1.atoll");
    signed_bundle(src.path(), &release, &v1);
    app(src.path(), "v2");
    let v2 = signed_bundle(src.path(), &release, &src.path().join("v2.atoll"));
    let by_other = signed_bundle(src.path(), &other, &src.path().join("other.atoll"));
    let unsigned = bundle(src.path(), &src.path().join("unsigned.atoll"));
    // v2 with a grant widened and the index rewritten to match.
    let mut widened = common::zip_entries(&v2);
    let manifest = widened.iter_mut().find(|(n, _)| n == "atoll.toml").unwrap();
    manifest.1 = String::from_utf8(manifest.1.clone())
        .unwrap()
        .replace(r#"["vars", "files"]"#, r#"["vars", "files", "kv"]"#)
        .into_bytes();
    common::reindex(&mut widened);
    let widened = common::rezip(&widened);

    let mut served = serve_with(&v1, &["--admin-token", TOKEN, "--trust", &trust.display().to_string()]);
    let addr = served.addr.clone();
    let auth = format!("Bearer {TOKEN}");
    for (bad, says) in [
        (&unsigned, "the bundle is not signed".to_string()),
        (
            &by_other,
            format!("signed by key {other_id}, which is not trusted here (trusted: {id})"),
        ),
        (
            &widened,
            format!("signature by key {id} does not match its contents: bundle.json was altered after signing"),
        ),
    ] {
        let r = http(&addr, "PUT", "/-/bundle", &[("authorization", &auth)], bad);
        assert_eq!(status(&r), 422, "{r}");
        let v: serde_json::Value = serde_json::from_str(body(&r)).unwrap();
        let error = v["error"].as_str().unwrap();
        assert!(error.contains(&says) && error.contains("uploaded.atoll"), "{error}");
        assert_eq!(version(&addr), "\"v1\"", "the running version keeps serving");
    }
    let r = http(&addr, "PUT", "/-/bundle", &[("authorization", &auth)], &v2);
    assert_eq!(status(&r), 200, "{r}");
    assert_eq!(version(&addr), "\"v2\"");
    assert!(terminate(&mut served.child).success());
}

/// Keys go both ways with OpenSSL (`scripts/test.sh` installs it): OpenSSL
/// derives the same public key from a key `atoll keygen` wrote, and a key
/// OpenSSL generated signs a bundle that its OpenSSL-derived public key
/// trusts.
#[test]
fn keys_are_interchangeable_with_openssl() {
    let openssl = |args: &[&std::ffi::OsStr]| {
        let o = std::process::Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl must be installed for this test (scripts/test.sh installs it)");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    keygen(d, "atoll");
    let derived = openssl(&[
        "pkey".as_ref(),
        "-in".as_ref(),
        d.join("atoll.key").as_os_str(),
        "-pubout".as_ref(),
    ]);
    let ours = std::fs::read_to_string(d.join("atoll.pub")).unwrap();
    assert!(ours.ends_with(&derived), "{ours}\nvs OpenSSL's\n{derived}");

    openssl(&[
        "genpkey".as_ref(),
        "-algorithm".as_ref(),
        "ed25519".as_ref(),
        "-out".as_ref(),
        d.join("ossl.key").as_os_str(),
    ]);
    openssl(&[
        "pkey".as_ref(),
        "-in".as_ref(),
        d.join("ossl.key").as_os_str(),
        "-pubout".as_ref(),
        "-out".as_ref(),
        d.join("ossl.pub").as_os_str(),
    ]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d.join("ossl.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let src = tempfile::tempdir().unwrap();
    app(src.path(), "v1");
    let file = d.join("app.atoll");
    signed_bundle(src.path(), &d.join("ossl.key"), &file);
    let (o, text, stderr) = run(atoll().arg("inspect").arg(&file).arg("--trust").arg(d.join("ossl.pub")));
    assert!(o.status.success(), "{stderr}");
    assert!(text.contains("(verified: trusted key"), "{text}");
}

/// `--watch` on a signed bundle under `--trust`: a replacement signed by
/// the trusted key is served; an unsigned one is refused and the version
/// before it keeps serving.
#[test]
fn watch_under_trust_reloads_only_trusted_bundles() {
    let (dir, keys) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    keygen(keys.path(), "release");
    let key = keys.path().join("release.key");
    app(dir.path(), "v1");
    let file = dir.path().join("app.atoll");
    signed_bundle(dir.path(), &key, &file);
    let trust = keys.path().join("release.pub").display().to_string();
    let (mut child, addr, mut lines) = common::start_serving(&file, &["--watch", "--trust", &trust]);
    assert_eq!(version(&addr), "\"v1\"");

    app(dir.path(), "v2");
    let next = dir.path().join("next.atoll");
    bundle(dir.path(), &next);
    std::fs::rename(&next, &file).unwrap();
    let refused = common::wait_for(&mut lines, |v| {
        v["message"]
            .as_str()
            .is_some_and(|e| e.contains("the bundle is not signed"))
    });
    assert!(refused["message"].as_str().unwrap().contains("app.atoll"), "{refused}");
    assert_eq!(version(&addr), "\"v1\"");
    std::thread::spawn(move || for _ in lines {});

    signed_bundle(dir.path(), &key, &next);
    std::fs::rename(&next, &file).unwrap();
    wait_until("the signed bundle to be served", || version(&addr) == "\"v2\"");
    assert!(terminate(&mut child).success());
}
