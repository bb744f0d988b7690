//! Named queries through a real guest (the SDK's `sql::query` and
//! `sql::transaction` in the caps fixture), on SQLite and on a real
//! PostgreSQL started by the test, with the schema from `migrations/`, from
//! a directory and from a bundle.

mod support;

use atoll_runtime::{App, AppSource, RuntimeConfig};
use atoll_testkit::PostgresServer;
use serde_json::{Value, json};
use std::sync::Arc;
use support::{TestApp, engine, load_in};

const MANIFEST: &str = r#"
[app]
name = "sql-test"

[queries.add_user]
sql = "INSERT INTO users (id, name, email) VALUES ($1, $2, $3)"

[queries.get_user]
sql = "SELECT id, name, email, avatar FROM users WHERE id = $1"

[queries.set_avatar]
sql = "UPDATE users SET avatar = $2 WHERE id = $1"

[queries.by_name]
sql = "SELECT id FROM users WHERE name = $1"

[queries.debit]
sql = "UPDATE accounts SET balance = balance - $2 WHERE id = $1"

[queries.credit]
sql = "UPDATE accounts SET balance = balance + $2 WHERE id = $1"

[queries.transfer]
transaction = ["debit", "credit"]

[queries.balances]
sql = "SELECT id, balance FROM accounts ORDER BY id"

[functions.db]
source = "{caps}"
capabilities = ["sql"]
queries = ["add_user", "get_user", "set_avatar", "by_name", "transfer", "balances"]

[functions.reader]
source = "{caps}"
capabilities = ["sql"]
queries = ["get_user"]

[functions.none]
source = "{caps}"
"#;

const SCHEMA: &str =
    "CREATE TABLE users (id BIGINT PRIMARY KEY, name TEXT NOT NULL, email TEXT UNIQUE, avatar BYTEA);\n";
const ACCOUNTS: &str = "CREATE TABLE accounts (id BIGINT PRIMARY KEY, balance BIGINT NOT NULL CHECK (balance >= 0));\nINSERT INTO accounts VALUES (1, 100), (2, 0);\n";

fn with_migrations() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("migrations");
    std::fs::create_dir_all(&m).unwrap();
    std::fs::write(m.join("001_users.sql"), SCHEMA).unwrap();
    std::fs::write(m.join("002_accounts.sql"), ACCOUNTS).unwrap();
    dir
}

async fn sql(app: &TestApp, f: &str, cmd: Value) -> Result<Value, String> {
    app.json(f, "sql", cmd).await
}

async fn exercise(app: &TestApp, backend: &str) {
    let q = |cmd| sql(app, "db", cmd);
    let added = q(json!({"name": "add_user", "params": [1, "ada", "ada@example.com"]}))
        .await
        .unwrap();
    assert_eq!(added["rows_affected"], 1);
    q(json!({"name": "set_avatar", "params": [1, {"bin": [0, 255, 7]}]}))
        .await
        .unwrap();
    let got = q(json!({"name": "get_user", "params": [1]})).await.unwrap();
    assert_eq!(
        got,
        json!({"columns": ["id", "name", "email", "avatar"], "rows": [[1, "ada", "ada@example.com", {"bin": [0, 255, 7]}]], "rows_affected": 0})
    );

    // A constraint violation reaches the guest as an error it handles (the
    // fixture answers 409 with it), not a trap.
    let err = q(json!({"name": "add_user", "params": [2, "eve", "ada@example.com"]}))
        .await
        .unwrap_err();
    assert!(
        err.contains(&format!(
            "query \"add_user\" on database \"default\" ({backend}): constraint violated"
        )),
        "{err}"
    );
    // Injection is text, not SQL.
    let none = q(json!({"name": "by_name", "params": ["' OR '1'='1"]})).await.unwrap();
    assert_eq!(none["rows"], json!([]));
    let err = q(json!({"name": "get_user", "params": []})).await.unwrap_err();
    assert!(
        err.contains("query \"get_user\" takes 1 parameter ($1), got 0"),
        "{err}"
    );

    // Transactions: all or nothing.
    let t = |params| {
        sql(
            app,
            "db",
            json!({"op": "transaction", "name": "transfer", "params": params}),
        )
    };
    t(json!([[1, 40], [2, 40]])).await.unwrap();
    let err = t(json!([[1, 100], [2, 100]])).await.unwrap_err();
    assert!(err.contains("constraint violated"), "{err}");
    let balances = q(json!({"name": "balances"})).await.unwrap();
    assert_eq!(balances["rows"], json!([[1, 60], [2, 40]]));

    // Grants are per function and per query.
    let err = sql(app, "reader", json!({"name": "add_user", "params": [3, "x", null]}))
        .await
        .unwrap_err();
    assert!(
        err.contains("query \"add_user\" is not granted to function \"reader\""),
        "{err}"
    );
    let err = sql(app, "none", json!({"name": "get_user", "params": [1]}))
        .await
        .unwrap_err();
    assert!(
        err.contains("capability \"sql\" is not granted to function \"none\""),
        "{err}"
    );
}

#[tokio::test]
async fn a_guest_runs_named_queries_on_sqlite() {
    let app = load_in(with_migrations(), MANIFEST, None, &[]).await.unwrap();
    exercise(&app, "sqlite").await;
    assert!(
        app.dir.path().join(".atoll/default.sqlite").exists(),
        "SQLite lives in the data directory by default"
    );
}

#[tokio::test]
async fn a_guest_runs_named_queries_on_postgres() {
    let url = PostgresServer::shared().create_database(&format!("rt_{}", std::process::id()));
    let runtime = format!("[sql.default]\nbackend = \"postgres\"\nurl = \"{url}\"\n");
    let app = load_in(with_migrations(), MANIFEST, Some(&runtime), &[]).await.unwrap();
    exercise(&app, "postgres").await;
}

#[tokio::test]
async fn a_bundle_carries_its_migrations() {
    let dir = with_migrations();
    let caps = atoll_testkit::guest_path("caps-fixture").display().to_string();
    std::fs::write(dir.path().join("atoll.toml"), MANIFEST.replace("{caps}", &caps)).unwrap();
    let bytes = atoll_bundle::write_dir(dir.path()).unwrap();
    // Only the bundle can hold the schema now.
    std::fs::remove_dir_all(dir.path().join("migrations")).unwrap();
    let source = AppSource::from_bundle_bytes(&dir.path().join("app.atoll"), &bytes, &Default::default()).unwrap();
    let app = Arc::new(
        App::from_source(&source, &engine(), &RuntimeConfig::default())
            .await
            .unwrap(),
    );
    let app = TestApp { app, dir };
    let balances = sql(&app, "db", json!({"name": "balances"})).await.unwrap();
    assert_eq!(balances["rows"], json!([[1, 100], [2, 0]]));
}

#[tokio::test]
async fn a_failing_migration_stops_the_load_naming_its_file() {
    let dir = with_migrations();
    std::fs::write(
        dir.path().join("migrations/003_broken.sql"),
        "CREATE TABLEE oops (id INT);\n",
    )
    .unwrap();
    let err = load_in(dir, MANIFEST, None, &[]).await.err().unwrap();
    assert!(
        err.contains("migrations/003_broken.sql")
            && err.contains("database \"default\" (sqlite)")
            && err.contains("TABLEE"),
        "{err}"
    );
}

#[tokio::test]
async fn the_same_function_reads_kv_and_sql() {
    let manifest = MANIFEST.replace(
        "[functions.none]",
        "[functions.both]\nsource = \"{caps}\"\ncapabilities = [\"kv\", \"sql\"]\nqueries = [\"get_user\"]\n\n[functions.none]",
    );
    let app = load_in(with_migrations(), &manifest, None, &[]).await.unwrap();
    sql(&app, "db", json!({"name": "add_user", "params": [1, "ada", null]}))
        .await
        .unwrap();
    app.json("both", "kv", json!({"op": "set", "key": "user:1", "value": "ada"}))
        .await
        .unwrap();
    assert_eq!(app.call("both", "kvget", "").await.unwrap(), "ada");
    assert_eq!(app.call("both", "sqlget", "").await.unwrap(), "ada");
}
