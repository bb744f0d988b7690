//! waPC links: a function calling another function of the app through a
//! namespace, with the callee's own grants and limits, within the caller's
//! deadline. The guests are the unmodified `wapc-plain` fixture, whose
//! `host` operation makes whatever host call its payload names
//! (`namespace:operation:payload`, so namespaces here avoid `:`) and
//! answers `ERR <message>` (wapc-guest prefixes `Host error: `) when the
//! host refuses.

mod support;

use support::{TestApp, load};

fn manifest() -> String {
    let plain = atoll_testkit::guest_path("wapc-plain").display().to_string();
    r#"
[app]
name = "links"

[functions.caller]
source = "{plain}"
links = ["callee"]

[functions.foreign]
source = "{plain}"
links = { "sample.namespace" = "callee", "slow" = "sleepy" }

[functions.unlinked]
source = "{plain}"

[functions.me]
source = "{plain}"
links = ["me"]

[functions.callee]
source = "{plain}"
memory = "2MiB"

[functions.sleepy]
source = "{plain}"
timeout = "200ms"
"#
    .replace("{plain}", &plain)
}

async fn app() -> TestApp {
    load(&manifest(), None, &[]).await.unwrap()
}

#[tokio::test]
async fn a_linked_call_runs_the_callee_and_returns_its_output() {
    let app = app().await;
    assert_eq!(app.call("caller", "host", "callee:upper:hello").await.unwrap(), "HELLO");
    // Any namespace string can be routed to a function.
    assert_eq!(
        app.call("foreign", "host", "sample.namespace:upper:shout")
            .await
            .unwrap(),
        "SHOUT"
    );
}

#[tokio::test]
async fn the_callee_sees_who_called_it_and_how() {
    let app = app().await;
    let out = raw(&app, "foreign", "sample.namespace:host:request:link:").await;
    let link: serde_json::Value = rmp_serde::from_slice(&out).unwrap();
    assert_eq!(link["caller"], "foreign");
    assert_eq!(link["namespace"], "sample.namespace");
    assert_eq!(link["operation"], "host");
    assert_eq!(link["binding"], "");
    assert_eq!(link["depth"], 1);
    // Outside a link, `request.link` is nil.
    assert_eq!(raw(&app, "callee", "request:link:").await.as_ref(), [0xc0]);
}

/// `function`'s `host` operation with `payload`; the output's bytes (the
/// results here are MessagePack, not text).
async fn raw(app: &TestApp, function: &str, payload: &str) -> bytes::Bytes {
    let trigger = atoll_runtime::Trigger::new("test", atoll_runtime::RequestInfo::default());
    let (mut response, mut spent) = Default::default();
    app.app
        .call(
            function,
            "host",
            payload.to_string().into(),
            &trigger,
            &mut response,
            &mut spent,
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn a_failing_callee_is_a_host_error_for_the_caller() {
    let app = app().await;
    let out = app.call("caller", "host", "callee:fail:").await.unwrap();
    assert_eq!(
        out,
        "ERR Host error: linked function \"callee\" failed: this function fails on purpose"
    );
    // The callee keeps its own memory limit (2 MiB), not the caller's.
    let out = app.call("caller", "host", "callee:big:4000000").await.unwrap();
    assert!(
        out.starts_with("ERR Host error: linked function \"callee\" failed:"),
        "{out}"
    );
    assert!(out.contains("memory limit of 2MiB"), "{out}");
}

#[tokio::test]
async fn a_callee_past_its_deadline_fails_the_call_not_the_caller() {
    let app = app().await;
    let out = app.call("foreign", "host", "slow:spin:").await.unwrap();
    assert_eq!(
        out,
        "ERR Host error: linked function \"sleepy\" failed: the function exceeded its deadline"
    );
}

#[tokio::test]
async fn a_namespace_that_is_not_linked_is_refused() {
    let app = app().await;
    let out = app.call("unlinked", "host", "callee:upper:x").await.unwrap();
    assert!(out.starts_with("ERR Host error: unknown namespace \"callee\""), "{out}");
    assert!(out.contains("`links`"), "{out}");
}

#[tokio::test]
async fn links_nest_at_most_eight_deep_and_the_chain_is_reported() {
    let app = app().await;
    // Each level strips one "me:host:" and calls itself with the rest; the
    // last hop ("me:upper:x") is the deepest call.
    let nine_deep = format!("{}me:upper:x", "me:host:".repeat(8));
    let out = app.call("me", "host", &nine_deep).await.unwrap();
    assert!(out.contains("linked calls may nest at most 8 deep"), "{out}");
    assert!(out.contains("me → me → me → me → me → me → me → me → me → me"), "{out}");
    let eight_deep = format!("{}me:upper:x", "me:host:".repeat(7));
    assert_eq!(app.call("me", "host", &eight_deep).await.unwrap(), "X");
}

/// A function at its `max_concurrency` that calls itself through a link
/// does not deadlock: the inner call waits at most `max_queue` for a slot
/// the outer one holds, then fails as a link error the caller sees.
#[tokio::test]
async fn a_limited_function_calling_itself_is_refused_after_its_queue_time_not_deadlocked() {
    let plain = atoll_testkit::guest_path("wapc-plain").display().to_string();
    let manifest = format!(
        r#"
[app]
name = "self-limited"

[functions.me]
source = "{plain}"
links = ["me"]
max_concurrency = 1
max_queue = "150ms"
"#
    );
    let app = load(&manifest, None, &[]).await.unwrap();
    let started = std::time::Instant::now();
    let out = app.call("me", "host", "me:upper:x").await.unwrap();
    let waited = started.elapsed();
    assert_eq!(
        out,
        "ERR Host error: linked function \"me\" failed: the function is at its max_concurrency of 1 and no slot freed within 150 ms; retry shortly"
    );
    assert!(
        waited >= std::time::Duration::from_millis(150) && waited < std::time::Duration::from_secs(3),
        "{waited:?}"
    );
    // The slot was given back: the function answers again.
    assert_eq!(app.call("me", "upper", "y").await.unwrap(), "Y");
    let stats = app.app.function("me").unwrap().concurrency().unwrap();
    assert_eq!(
        (stats.limit, stats.in_flight, stats.waiting, stats.refused),
        (1, 0, 0, 1)
    );
}
