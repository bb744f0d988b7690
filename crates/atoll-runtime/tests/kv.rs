//! Key-value through a real guest, on every backend: embedded redb, memory,
//! and a real redis-server started by the test.

mod support;

use atoll_testkit::RedisServer;
use serde_json::json;
use std::time::Duration;
use support::{TestApp, load, load_in};

const MANIFEST: &str = r#"
[app]
name = "kv-test"

[functions.store]
source = "{caps}"
capabilities = ["kv"]
kv_stores = ["default", "other"]

[functions.default_only]
source = "{caps}"
capabilities = ["kv"]

[functions.none]
source = "{caps}"
"#;

async fn kv(app: &TestApp, f: &str, cmd: serde_json::Value) -> Result<serde_json::Value, String> {
    app.json(f, "kv", cmd).await
}

/// The same sequence, with the same answers, whatever the backend.
async fn exercise(app: &TestApp) {
    let k = |c| kv(app, "store", c);
    assert_eq!(k(json!({"op": "get", "key": "a"})).await.unwrap(), json!(null));
    assert_eq!(
        k(json!({"op": "set", "key": "a", "value": "1"})).await.unwrap(),
        json!(null)
    );
    assert_eq!(k(json!({"op": "get", "key": "a"})).await.unwrap(), json!("1"));
    assert_eq!(k(json!({"op": "exists", "key": "a"})).await.unwrap(), json!(true));
    assert_eq!(
        k(json!({"op": "increment", "key": "a", "by": 41})).await.unwrap(),
        json!(42)
    );
    assert_eq!(k(json!({"op": "get", "key": "a"})).await.unwrap(), json!("42"));
    assert_eq!(
        k(json!({"op": "increment", "key": "fresh", "by": -3})).await.unwrap(),
        json!(-3)
    );
    k(json!({"op": "set", "key": "word", "value": "hello"})).await.unwrap();
    let err = k(json!({"op": "increment", "key": "word", "by": 1})).await.unwrap_err();
    assert!(err.contains("not a decimal integer"), "{err}");

    for key in ["user:2", "user:1", "user:10", "other:1"] {
        k(json!({"op": "set", "key": key, "value": "x"})).await.unwrap();
    }
    assert_eq!(
        k(json!({"op": "keys", "prefix": "user:"})).await.unwrap(),
        json!(["user:1", "user:10", "user:2"])
    );
    assert_eq!(k(json!({"op": "delete", "key": "user:1"})).await.unwrap(), json!(true));
    assert_eq!(k(json!({"op": "delete", "key": "user:1"})).await.unwrap(), json!(false));
    assert_eq!(k(json!({"op": "exists", "key": "user:1"})).await.unwrap(), json!(false));

    // Stores are isolated from each other.
    assert_eq!(
        k(json!({"op": "get", "store": "other", "key": "a"})).await.unwrap(),
        json!(null)
    );
    k(json!({"op": "set", "store": "other", "key": "a", "value": "mine"}))
        .await
        .unwrap();
    assert_eq!(k(json!({"op": "get", "key": "a"})).await.unwrap(), json!("42"));

    // TTLs expire; a plain set clears an earlier TTL.
    k(json!({"op": "set", "key": "t", "value": "soon", "ttl_ms": 150}))
        .await
        .unwrap();
    k(json!({"op": "set", "key": "kept", "value": "v", "ttl_ms": 150}))
        .await
        .unwrap();
    k(json!({"op": "set", "key": "kept", "value": "v"})).await.unwrap();
    assert_eq!(k(json!({"op": "get", "key": "t"})).await.unwrap(), json!("soon"));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(k(json!({"op": "get", "key": "t"})).await.unwrap(), json!(null));
    assert_eq!(k(json!({"op": "exists", "key": "t"})).await.unwrap(), json!(false));
    assert_eq!(k(json!({"op": "get", "key": "kept"})).await.unwrap(), json!("v"));

    // Concurrent increments are atomic.
    let tasks: Vec<_> = (0..20)
        .map(|_| k(json!({"op": "increment", "key": "n", "by": 1})))
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(k(json!({"op": "get", "key": "n"})).await.unwrap(), json!("20"));
}

#[tokio::test]
async fn redb_backend() {
    let app = load(MANIFEST, None, &[]).await.unwrap();
    exercise(&app).await;
    assert!(
        app.dir.path().join(".atoll/kv.redb").exists(),
        "redb is the default, under .atoll"
    );
}

#[tokio::test]
async fn memory_backend() {
    let rt = "[kv.default]\nbackend = \"memory\"\n[kv.other]\nbackend = \"memory\"\n";
    exercise(&load(MANIFEST, Some(rt), &[]).await.unwrap()).await;
}

#[tokio::test]
async fn redis_backend() {
    let redis = RedisServer::start();
    let rt = format!(
        "[kv.default]\nbackend = \"redis\"\nurl = \"{url}\"\n[kv.other]\nbackend = \"redis\"\nurl = \"{url}\"\n",
        url = redis.url()
    );
    exercise(&load(MANIFEST, Some(&rt), &[]).await.unwrap()).await;
}

#[tokio::test]
async fn stores_and_capabilities_not_granted_are_refused() {
    let app = load(MANIFEST, Some("[kv.default]\nbackend = \"memory\"\n"), &[])
        .await
        .unwrap();
    assert_eq!(
        kv(&app, "default_only", json!({"op": "set", "key": "k", "value": "v"}))
            .await
            .unwrap(),
        json!(null)
    );
    let err = kv(&app, "default_only", json!({"op": "get", "store": "other", "key": "k"}))
        .await
        .unwrap_err();
    assert!(
        err.contains("kv store \"other\" is not granted to function \"default_only\""),
        "{err}"
    );
    let err = kv(&app, "none", json!({"op": "get", "key": "k"})).await.unwrap_err();
    assert!(
        err.contains("capability \"kv\" is not granted to function \"none\""),
        "{err}"
    );
}

/// Whatever was acknowledged survives closing and reopening the app.
#[tokio::test]
async fn the_embedded_store_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let first = load_in(dir, MANIFEST, None, &[]).await.unwrap();
    for _ in 0..5 {
        first.call("store", "visit", "").await.unwrap();
    }
    kv(
        &first,
        "store",
        json!({"op": "set", "store": "other", "key": "s", "value": "kept", "ttl_ms": 600000}),
    )
    .await
    .unwrap();
    let dir = first.dir;
    drop(first.app);
    assert_eq!(dir.path(), path);

    let second = load_in(dir, MANIFEST, None, &[]).await.unwrap();
    assert_eq!(second.call("store", "visit", "").await.unwrap(), "6");
    assert_eq!(
        kv(&second, "store", json!({"op": "get", "store": "other", "key": "s"}))
            .await
            .unwrap(),
        json!("kept")
    );
}

/// Redis dies mid-run: calls fail with a clear error, the server keeps
/// serving, and the store works again once Redis is back.
#[tokio::test]
async fn a_redis_outage_fails_calls_and_recovers() {
    let mut redis = RedisServer::start();
    let rt = format!("[kv.default]\nbackend = \"redis\"\nurl = \"{}\"\n", redis.url());
    let app = load(MANIFEST, Some(&rt), &[]).await.unwrap();
    assert_eq!(app.call("store", "visit", "").await.unwrap(), "1");

    redis.kill();
    let err = app.call("store", "visit", "").await.unwrap_err().message();
    assert!(
        err.contains("kv store \"default\" (redis): backend unavailable"),
        "{err}"
    );
    // Other capabilities and functions are unaffected.
    let err = kv(&app, "none", json!({"op": "get", "key": "k"})).await.unwrap_err();
    assert!(err.contains("not granted"));

    redis.restart();
    let mut recovered = None;
    for _ in 0..50 {
        match app.call("store", "visit", "").await {
            Ok(n) => {
                recovered = Some(n);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    // A restarted Redis without persistence starts empty: the count restarts.
    assert_eq!(
        recovered.as_deref(),
        Some("1"),
        "the store did not recover after Redis came back"
    );
}

/// An app starts even while its Redis is down, and works once it is up.
#[tokio::test]
async fn an_app_starts_while_redis_is_down() {
    let mut redis = RedisServer::start();
    redis.kill();
    let rt = format!("[kv.default]\nbackend = \"redis\"\nurl = \"{}\"\n", redis.url());
    let app = load(MANIFEST, Some(&rt), &[]).await.unwrap();
    assert!(
        app.call("store", "visit", "")
            .await
            .unwrap_err()
            .message()
            .contains("unavailable")
    );
    redis.restart();
    assert_eq!(app.call("store", "visit", "").await.unwrap(), "1");
}
