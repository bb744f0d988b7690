//! WAGI functions through the runtime: what reaches the host log, what a
//! schedule's run sees, and static files served from a bundle. (The HTTP
//! side is in `crates/atoll-http/tests/wagi.rs`.)

mod support;

use atoll_runtime::{App, AppSource, RequestInfo, RuntimeConfig, Trigger, TriggerKind};
use bytes::Bytes;
use std::sync::Arc;
use support::*;

fn manifest() -> String {
    let wagi = atoll_testkit::guest_path("wagi-rust").display().to_string();
    format!(
        r#"[app]
name = "wagi-runtime"

[functions.chatty]
source = "{wagi}"
abi = "wagi"
capabilities = ["log", "files"]

[functions.quiet]
source = "{wagi}"
abi = "wagi"
"#
    )
}

async fn run(app: &Arc<App>, function: &str, request: RequestInfo, id: &str) -> String {
    let payload = request.body.clone();
    let trigger = Trigger::new(id, request);
    let (mut response, mut spent) = Default::default();
    let out = app
        .call(function, "handle", payload, &trigger, &mut response, &mut spent)
        .await
        .unwrap_or_else(|f| panic!("{}", f.message()));
    String::from_utf8_lossy(&out).into_owned()
}

fn http(uri: &str, body: &str) -> RequestInfo {
    RequestInfo {
        uri: uri.parse().unwrap(),
        body: Bytes::copy_from_slice(body.as_bytes()),
        ..RequestInfo::default()
    }
}

#[tokio::test]
async fn stderr_reaches_the_log_only_with_the_log_grant() {
    let t = load(&manifest(), None, &[]).await.unwrap();
    run(&t.app, "chatty", http("/x?echo", "twelve bytes"), "req-chatty").await;
    run(&t.app, "quiet", http("/x?echo", "eleven byte"), "req-quiet").await;
    let logs = logged();
    let line = logs
        .lines()
        .find(|l| l.contains("echoing 12 bytes"))
        .unwrap_or_else(|| panic!("the granted function's stderr is not in the log:\n{logs}"));
    assert!(
        line.contains("[stderr]") && line.contains("chatty") && line.contains("req-chatty"),
        "{line}"
    );
    assert!(
        !logs.contains("echoing 11 bytes"),
        "the ungranted function's stderr was logged"
    );
}

#[tokio::test]
async fn a_scheduled_run_sees_fixed_cgi_values() {
    let t = load(&manifest(), None, &[]).await.unwrap();
    let request = RequestInfo {
        trigger: TriggerKind::Schedule { name: "nightly".into() },
        ..RequestInfo::default()
    };
    let out = run(&t.app, "quiet", request, "req-schedule").await;
    for line in [
        "args=quiet\n",
        "env REQUEST_METHOD=POST\n",
        "env SCRIPT_NAME=/quiet\n",
        "env X_ATOLL_TRIGGER=schedule\n",
        "env X_ATOLL_SOURCE=nightly\n",
        "env SERVER_PORT=0\n",
    ] {
        assert!(out.contains(line), "{line:?} in:\n{out}");
    }
}

#[tokio::test]
async fn a_bundles_static_files_are_mounted_from_a_private_copy() {
    let t = load(&manifest(), None, &[("hello.txt", "from the bundle")])
        .await
        .unwrap();
    let bytes = atoll_bundle::write_dir(t.dir.path()).unwrap();
    let source = AppSource::from_bundle_bytes(&t.dir.path().join("app.atoll"), &bytes, &Default::default()).unwrap();
    // The directory the bundle came from is gone: only the copy can answer.
    std::fs::remove_dir_all(t.dir.path().join("static")).unwrap();
    let app = Arc::new(
        App::from_source(&source, &engine(), &RuntimeConfig::default())
            .await
            .unwrap(),
    );
    let out = run(&app, "chatty", http("/x?static", ""), "req-bundle").await;
    assert_eq!(out, "static: from the bundle");
    let out = run(&app, "quiet", http("/x?static", ""), "req-bundle").await;
    assert!(out.starts_with("no static: "), "{out}");
}
