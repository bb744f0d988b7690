//! Pipelines: state, `with`, `input`, `response`, groups, deadlines,
//! `on_error`, and the schedule and subscription triggers.

mod support;

use atoll_runtime::{Outcome, RequestInfo, Trigger};
use bytes::Bytes;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::{TestApp, load, logged};

fn manifest(routes: &str) -> String {
    format!(
        r#"
[app]
name = "pipes"

[functions.f]
source = "{{caps}}"

[functions.counter]
source = "{{caps}}"
capabilities = ["kv"]

[functions.publisher]
source = "{{caps}}"
capabilities = ["msg"]
publish_topics = ["orders.*"]
{routes}"#
    )
}

async fn run(app: &TestApp, route: usize, body: &str) -> Outcome {
    let pipeline = &app.app.manifest.routes[route].pipeline;
    let trigger = Trigger::new(
        "t",
        RequestInfo {
            body: Bytes::copy_from_slice(body.as_bytes()),
            ..RequestInfo::default()
        },
    );
    app.app.run(pipeline, &trigger).await
}

fn json_body(o: &Outcome) -> Value {
    let body = o
        .result
        .as_ref()
        .unwrap_or_else(|f| panic!("the pipeline failed: {}", f.message()));
    serde_json::from_slice(body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)))
}

#[tokio::test]
async fn outputs_flow_through_the_state() {
    let app = load(
        &manifest(
            r#"
[[routes]]
path = "/a"
steps = [
  { fn = "f", op = "upper", as = "shout" },
  { fn = "f", op = "echo", input = "shout", as = "copy" },
  { fn = "f", op = "state", as = "limited", with = { loud = "shout" } },
  { fn = "f", op = "state", as = "all" },
]
response = "all"

[[routes]]
path = "/b"
steps = [
  { fn = "f", op = "upper", as = "shout" },
  { fn = "f", op = "state", as = "limited", with = { loud = "shout", nothing = "shout" } },
  { fn = "f", op = "echo" },
]
response = "limited"
"#,
        ),
        None,
        &[],
    )
    .await
    .unwrap();
    let all = json_body(&run(&app, 0, "hi").await);
    assert_eq!(all["shout"], "HI");
    assert_eq!(all["copy"], "HI", "`input` made the state entry the payload");
    assert_eq!(all["limited"], r#"{"loud":"HI"}"#, "`with` showed only the alias");
    assert_eq!(all.as_object().unwrap().len(), 3, "{all}");

    // `response` picks an entry other than the last step's output.
    let limited = json_body(&run(&app, 1, "hey").await);
    assert_eq!(limited, json!({"loud": "HEY", "nothing": "HEY"}));
}

#[tokio::test]
async fn without_response_the_last_output_is_the_result() {
    let app = load(
        &manifest(
            "[[routes]]\npath = \"/\"\nsteps = [{ fn = \"f\", op = \"upper\" }, { fn = \"f\", op = \"echo\" }]\n",
        ),
        None,
        &[],
    )
    .await
    .unwrap();
    // Each step's payload is the request body unless `input` says otherwise.
    assert_eq!(run(&app, 0, "quiet").await.result.unwrap(), "quiet");
}

/// Two members that each wait 100 ms finish together, in well under the
/// 200 ms they would take one after the other.
#[tokio::test]
async fn group_members_run_concurrently() {
    let app = load(
        &manifest(
            r#"
[[routes]]
path = "/group"
steps = [{ group = [{ fn = "f", op = "sleep", as = "a" }, { fn = "f", op = "sleep", as = "b" }] }, { fn = "f", op = "state" }]

[[routes]]
path = "/sequence"
steps = [{ fn = "f", op = "sleep", as = "a" }, { fn = "f", op = "sleep", as = "b" }]
"#,
        ),
        None,
        &[],
    )
    .await
    .unwrap();
    run(&app, 0, "1").await; // warm the instances' code paths
    let started = Instant::now();
    let out = run(&app, 0, "100").await;
    let group = started.elapsed();
    assert_eq!(json_body(&out), json!({"a": "slept 100", "b": "slept 100"}));

    let started = Instant::now();
    run(&app, 1, "100").await.result.unwrap();
    let sequence = started.elapsed();
    assert!(sequence >= Duration::from_millis(200), "{sequence:?}");
    assert!(
        group < Duration::from_millis(190),
        "the group took {group:?}; one after the other takes {sequence:?}"
    );
}

#[tokio::test]
async fn group_members_see_the_state_as_it_was_when_the_group_started() {
    let app = load(
        &manifest(
            r#"
[[routes]]
path = "/"
steps = [
  { fn = "f", op = "echo", as = "x" },
  { group = [{ fn = "f", op = "state", as = "seen" }, { fn = "f", op = "upper", input = "x", as = "y" }] },
  { fn = "f", op = "state", as = "after" },
]
response = "after"
"#,
        ),
        None,
        &[],
    )
    .await
    .unwrap();
    let after = json_body(&run(&app, 0, "v").await);
    assert_eq!(
        after["seen"], r#"{"x":"v"}"#,
        "the sibling's output was not visible inside the group"
    );
    assert_eq!(after["y"], "V");
    assert_eq!(after["x"], "v");
}

#[tokio::test]
async fn a_group_has_a_deadline() {
    let app = load(
        &manifest(
            r#"
[[routes]]
path = "/lenient"
steps = [
  { group = [
      { fn = "f", op = "echo", as = "fast" },
      { fn = "f", op = "sleep", as = "slow", on_error = "continue" },
    ], timeout = "300ms" },
  { fn = "f", op = "state" },
]

[[routes]]
path = "/strict"
steps = [{ group = [{ fn = "f", op = "echo", as = "fast" }, { fn = "f", op = "sleep", as = "slow" }], timeout = "300ms" }]
response = "fast"
"#,
        ),
        None,
        &[],
    )
    .await
    .unwrap();
    let started = Instant::now();
    let out = run(&app, 0, "2000").await;
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    let state = json_body(&out);
    assert_eq!(state["fast"], "2000");
    let slow: Value = serde_json::from_str(state["slow"].as_str().unwrap()).unwrap();
    assert_eq!(slow["status"], 504);
    assert_eq!(slow["function"], "f");
    assert!(slow["error"].as_str().unwrap().contains("deadline"), "{slow}");

    let failure = run(&app, 1, "2000")
        .await
        .result
        .expect_err("the strict group returns the timeout");
    assert_eq!(failure.status(), 504);
}

#[tokio::test]
async fn on_error_routes_by_status_code() {
    let app = load(
        &manifest(
            r#"
[[routes]]
path = "/"
steps = [
  { fn = "f", op = "fail", as = "lookup", on_error = { codes = { 404 = "continue" }, other = "return" } },
  { fn = "f", op = "state" },
]

[[routes]]
path = "/any"
steps = [{ fn = "f", op = "fail", on_error = { any = "continue" } }, { fn = "f", op = "echo" }]
"#,
        ),
        None,
        &[],
    )
    .await
    .unwrap();
    let out = run(&app, 0, "404 no such thing").await;
    let state = json_body(&out);
    let entry: Value = serde_json::from_str(state["lookup"].as_str().unwrap()).unwrap();
    assert_eq!(entry, json!({"error": "no such thing", "status": 404, "function": "f"}));
    assert_eq!(
        out.response.status, None,
        "a failed call's status is not applied when the pipeline goes on"
    );

    let failure = run(&app, 0, "409 taken").await.result.err().unwrap();
    assert_eq!((failure.status(), failure.message().as_str()), (409, "taken"));
    // A status outside 400-599 on a failure becomes 500.
    assert_eq!(run(&app, 0, "200 odd").await.result.err().unwrap().status(), 500);

    assert_eq!(run(&app, 1, "503 down").await.result.unwrap(), "503 down");
}

#[tokio::test]
async fn status_and_headers_set_by_successful_calls_apply() {
    let app = load(
        &manifest("[[routes]]\npath = \"/\"\nsteps = [{ fn = \"f\", op = \"tag\" }, { fn = \"f\", op = \"echo\" }]\n"),
        None,
        &[],
    )
    .await
    .unwrap();
    let out = run(&app, 0, "v1").await;
    assert_eq!(out.result.as_deref().unwrap(), b"v1");
    assert_eq!(out.response.status, Some(202));
    assert_eq!(out.response.headers[0].0, "x-tag");
    assert_eq!(out.response.headers[0].1, "v1");
}

#[tokio::test]
async fn schedules_run_their_pipelines_with_seed_state_and_never_overlap() {
    let app = load(
        &manifest(
            r#"
[[schedules]]
name = "tick"
every = "100ms"
state = { pause = "250" }
steps = [{ fn = "f", op = "sleep", input = "pause" }, { fn = "counter", op = "visit" }]

[[schedules]]
name = "broken"
every = "100ms"
steps = [{ fn = "f", op = "fail", input = "nothing" }]
state = { nothing = "418 teapot" }
"#,
        ),
        Some("[kv.default]\nbackend = \"memory\"\n"),
        &[],
    )
    .await
    .unwrap();
    let running = atoll_triggers::start(app.app.clone()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    running.stop().await;
    let visits: i64 = app
        .call("counter", "kv", r#"{"op":"get","key":"visits"}"#)
        .await
        .unwrap()
        .trim_matches('"')
        .parse()
        .unwrap();
    // Every 100 ms for 1.3 s would be 13 runs; each takes 250 ms and waits
    // for the previous one, so there are at most 5.
    assert!((2..=5).contains(&visits), "{visits} runs");
    let logs = logged();
    assert!(
        logs.contains("\"schedule\":\"broken\"") && logs.contains("schedule failed") && logs.contains("teapot"),
        "errors are logged with the schedule's name"
    );
}

#[tokio::test]
async fn subscriptions_handle_published_messages_and_reply() {
    let app = load(
        &manifest(
            r#"
[[subscriptions]]
topic = "orders.created"
steps = [{ fn = "f", op = "whoami" }]
reply_to = "orders.done"
"#,
        ),
        None,
        &[],
    )
    .await
    .unwrap();
    let pattern = atoll_manifest::TopicPattern::parse("orders.done").unwrap();
    let mut replies = app.app.broker().subscribe(&pattern, "test").await.unwrap();
    let running = atoll_triggers::start(app.app.clone()).await.unwrap();

    let out = app
        .call(
            "publisher",
            "publish",
            r#"{"topic":"orders.created","payload":"order 42"}"#,
        )
        .await
        .unwrap();
    assert_eq!(out, "published");
    let reply = tokio::time::timeout(Duration::from_secs(5), replies.next())
        .await
        .unwrap()
        .unwrap();
    let v: Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(
        v,
        json!({"trigger": "message", "source": "orders.created", "body": "order 42"})
    );

    let err = app
        .call("publisher", "publish", r#"{"topic":"users.created","payload":"x"}"#)
        .await
        .unwrap_err()
        .message();
    assert!(
        err.contains("topic \"users.created\" is not in the publish_topics of function \"publisher\""),
        "{err}"
    );
    let err = app
        .call("f", "publish", r#"{"topic":"orders.created","payload":"x"}"#)
        .await
        .unwrap_err()
        .message();
    assert!(err.contains("capability \"msg\" is not granted"), "{err}");
    running.stop().await;
}

/// Functions built from one module share its compilation, but each keeps
/// its own limits.
#[tokio::test]
async fn functions_sharing_a_module_keep_their_own_limits() {
    let app = load(
        r#"
[app]
name = "shared"

[functions.quick]
source = "{caps}"
timeout = "300ms"

[functions.patient]
source = "{caps}"
timeout = "5s"
"#,
        None,
        &[],
    )
    .await
    .unwrap();
    let quick = app.app.function("quick").unwrap();
    let patient = app.app.function("patient").unwrap();
    assert_eq!(quick.guest.sha256(), patient.guest.sha256());
    assert_eq!(app.call("quick", "sleep", "1000").await.unwrap_err().status(), 504);
    assert_eq!(app.call("patient", "sleep", "1000").await.unwrap(), "slept 1000");

    // A limit too small for the module is that function's error alone.
    let err = load(
        "[app]\nname = \"tight\"\n\n[functions.ok]\nsource = \"{caps}\"\n\n[functions.cramped]\nsource = \"{caps}\"\nmemory = \"64KiB\"\n",
        None,
        &[],
    )
    .await
    .err()
    .unwrap();
    assert!(
        err.contains("functions.cramped.source") && err.contains("memory at start"),
        "{err}"
    );
    assert!(!err.contains("functions.ok"), "{err}");
}
