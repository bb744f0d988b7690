//! One sequence of `sql` operations, run against every backend (SQLite in a
//! temporary data directory, and a real PostgreSQL started by the test),
//! through the whole wiring a guest's calls take: a manifest with named
//! queries and migrations goes into `Services::build`, the function's
//! grants come out, and each operation goes through `Invocation::host_call`
//! with MessagePack payloads. The rules written beside the `SqlDatabase`
//! trait in `src/sql/mod.rs` are checked here; where a backend differs by
//! nature (SQLite has no boolean type and takes any value in any column),
//! the step says so.

use atoll_caps::sql::{QueryResult, SqlValue};
use atoll_caps::{AppFiles, HostCallError, Invocation, RequestInfo, Services};
use atoll_manifest::{Manifest, RuntimeConfigFile};
use atoll_testkit::{PostgresServer, PostgresTls, TestCa};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const MANIFEST: &str = r#"
[app]
name = "sqltest"

[queries.add_user]
sql = "INSERT INTO users (id, name, email, score, avatar, active) VALUES ($1, $2, $3, $4, $5, $6)"

[queries.get_user]
sql = "SELECT id, name, email, score, avatar, active FROM users WHERE id = $1"

[queries.find_by_name]
sql = "SELECT id FROM users WHERE name = $1 ORDER BY id"

[queries.all_users]
sql = "SELECT id FROM users ORDER BY id"
max_rows = 3

[queries.rename]
sql = "UPDATE users SET name = $2 WHERE id = $1"

[queries.debit]
sql = "UPDATE accounts SET balance = balance - $2 WHERE id = $1"

[queries.credit]
sql = "UPDATE accounts SET balance = balance + $2 WHERE id = $1"

[queries.transfer]
transaction = ["debit", "credit"]

[queries.balances]
sql = "SELECT id, balance FROM accounts ORDER BY id"

[queries.migrations]
sql = "SELECT name FROM atoll_migrations ORDER BY name"

[queries.secret]
sql = "SELECT name FROM users"

[functions.db]
source = "x.wasm"
capabilities = ["sql"]
queries = ["add_user", "get_user", "find_by_name", "all_users", "rename", "transfer", "balances", "migrations", "debit"]
"#;

const MIGRATION: &str = "CREATE TABLE users (id BIGINT PRIMARY KEY, name TEXT NOT NULL, email TEXT UNIQUE, score DOUBLE PRECISION, avatar BYTEA, active BOOLEAN);\n\
CREATE TABLE accounts (id BIGINT PRIMARY KEY, balance BIGINT NOT NULL CHECK (balance >= 0));\n\
INSERT INTO accounts VALUES (1, 100), (2, 0);\n";

#[derive(Clone)]
enum Backend {
    Sqlite,
    /// A URL to a fresh database.
    Postgres(String),
}

impl Backend {
    fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    fn runtime(&self, dir: &Path) -> RuntimeConfigFile {
        let text = match self {
            Backend::Sqlite => String::new(),
            Backend::Postgres(url) => format!("[sql.default]\nbackend = \"postgres\"\nurl = \"{url}\"\n"),
        };
        RuntimeConfigFile::parse(&text, &dir.join("runtime.toml")).unwrap()
    }
}

fn migrations(list: &[(&str, &str)]) -> AppFiles {
    AppFiles {
        migrations: list.iter().map(|(n, s)| (n.to_string(), s.to_string())).collect(),
        ..AppFiles::default()
    }
}

async fn build(backend: &Backend, dir: &Path, manifest: &str, app: AppFiles) -> Result<Services, String> {
    let manifest = Manifest::parse(manifest, &dir.join("atoll.toml")).map_err(|e| e.to_string())?;
    Services::build(&manifest, backend.runtime(dir), dir, |_| None, app)
        .await
        .map_err(|e| e.to_string())
}

struct Db {
    inv: Invocation,
}

#[derive(Serialize)]
struct Query<'a> {
    name: &'a str,
    params: Vec<SqlValue>,
}

#[derive(Serialize)]
struct Transaction<'a> {
    name: &'a str,
    params: Vec<Vec<SqlValue>>,
}

#[derive(serde::Deserialize, Debug)]
struct Result_ {
    columns: Vec<String>,
    rows: Vec<Vec<SqlValue>>,
    rows_affected: u64,
}

impl Db {
    fn new(services: &Services) -> Db {
        let manifest = Manifest::parse(MANIFEST, Path::new("atoll.toml")).unwrap();
        let grants = services.grants_for(&manifest.functions["db"]).unwrap();
        Db {
            inv: Invocation::new("db", "r", Arc::new(grants), Arc::new(RequestInfo::default())),
        }
    }

    async fn raw(&mut self, op: &str, payload: &impl Serialize) -> Result<Vec<u8>, HostCallError> {
        let bytes = rmp_serde::to_vec_named(payload).unwrap();
        self.inv.host_call("", "sql", op, &bytes).await
    }

    async fn query(&mut self, name: &str, params: Vec<SqlValue>) -> Result<Result_, HostCallError> {
        let out = self.raw("query", &Query { name, params }).await?;
        Ok(rmp_serde::from_slice(&out).unwrap())
    }

    async fn rows(&mut self, name: &str, params: Vec<SqlValue>) -> Vec<Vec<SqlValue>> {
        self.query(name, params).await.unwrap().rows
    }

    async fn transaction(&mut self, name: &str, params: Vec<Vec<SqlValue>>) -> Result<Vec<Result_>, HostCallError> {
        let out = self.raw("transaction", &Transaction { name, params }).await?;
        Ok(rmp_serde::from_slice(&out).unwrap())
    }
}

use SqlValue::{Bytes, Float, Int, Null, Text};

fn user(id: i64, name: &str, email: Option<&str>) -> Vec<SqlValue> {
    vec![
        Int(id),
        Text(name.into()),
        email.map_or(Null, |e| Text(e.into())),
        Float(1.5),
        Bytes(vec![0, 159, 255]),
        SqlValue::Bool(true),
    ]
}

/// The sequence every backend must pass.
async fn exercise(backend: Backend) {
    let b = backend.name();
    let dir = tempfile::tempdir().unwrap();
    let services = build(
        &backend,
        dir.path(),
        MANIFEST,
        migrations(&[("001_schema.sql", MIGRATION)]),
    )
    .await
    .unwrap();
    let mut db = Db::new(&services);

    // Writes say how many rows they changed; reads return names and rows.
    let added = db
        .query("add_user", user(1, "ada", Some("ada@example.com")))
        .await
        .unwrap();
    assert_eq!((added.columns.len(), added.rows_affected), (0, 1), "{b}");
    let got = db.query("get_user", vec![Int(1)]).await.unwrap();
    assert_eq!(got.columns, ["id", "name", "email", "score", "avatar", "active"], "{b}");
    assert_eq!(got.rows_affected, 0, "{b}: a read changes nothing");
    // SQLite has no boolean type: true is stored, and read back, as 1.
    let truth = if b == "sqlite" { Int(1) } else { SqlValue::Bool(true) };
    assert_eq!(
        got.rows,
        [vec![
            Int(1),
            Text("ada".into()),
            Text("ada@example.com".into()),
            Float(1.5),
            Bytes(vec![0, 159, 255]),
            truth
        ]],
        "{b}"
    );
    let mut nulls = user(2, "bob", None);
    nulls[3] = Null;
    nulls[4] = Null;
    nulls[5] = Null;
    db.query("add_user", nulls).await.unwrap();
    assert_eq!(
        db.rows("get_user", vec![Int(2)]).await[0][2..],
        [Null, Null, Null, Null],
        "{b}"
    );
    assert!(db.rows("get_user", vec![Int(99)]).await.is_empty(), "{b}");

    // A constraint violation is an error the guest reads, naming the query
    // and the database; nothing was written.
    let err = db
        .query("add_user", user(3, "eve", Some("ada@example.com")))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "query \"add_user\" on database \"default\" ({b}): constraint violated:"
        )),
        "{text}"
    );
    assert!(db.rows("get_user", vec![Int(3)]).await.is_empty(), "{b}");

    // Parameters are bound, never spliced: text that would be SQL is a value.
    for hostile in ["x' OR '1'='1", "ada'; DROP TABLE users; --", "\" OR 1=1 --", "$1", "?1"] {
        assert!(
            db.rows("find_by_name", vec![Text(hostile.into())]).await.is_empty(),
            "{b}: {hostile}"
        );
    }
    // Text PostgreSQL cannot hold is an error naming the query, not a crash.
    let nul = db.query("find_by_name", vec![Text("ada\0".into())]).await;
    match b {
        "sqlite" => assert!(nul.unwrap().rows.is_empty()),
        _ => {
            let err = nul.unwrap_err().to_string();
            assert!(
                err.starts_with("query \"find_by_name\" on database \"default\" (postgres):"),
                "{err}"
            );
        }
    }
    db.query("add_user", user(4, "x' OR '1'='1", None)).await.unwrap();
    assert_eq!(
        db.rows("find_by_name", vec![Text("x' OR '1'='1".into())]).await,
        [[Int(4)]],
        "{b}"
    );
    assert_eq!(
        db.rows("get_user", vec![Int(1)]).await.len(),
        1,
        "{b}: the table is still there"
    );

    // Updates count their rows.
    let renamed = db.query("rename", vec![Int(1), Text("ada l.".into())]).await.unwrap();
    assert_eq!(renamed.rows_affected, 1, "{b}");
    assert_eq!(
        db.query("rename", vec![Int(99), Text("x".into())])
            .await
            .unwrap()
            .rows_affected,
        0
    );

    // More rows than max_rows is an error, not a silent cut.
    db.query("add_user", user(5, "dan", None)).await.unwrap();
    let err = db.query("all_users", vec![]).await.unwrap_err().to_string();
    assert!(err.contains("more than 3 rows (the query's max_rows)"), "{b}: {err}");

    // Wrong counts and kinds are refused before anything runs.
    for (params, expected) in [
        (vec![], "query \"get_user\" takes 1 parameter ($1), got 0"),
        (vec![Int(1), Int(2)], "query \"get_user\" takes 1 parameter ($1), got 2"),
    ] {
        let err = db.query("get_user", params).await.unwrap_err();
        assert_eq!(err, HostCallError::BadPayload(expected.into()), "{b}");
    }
    #[derive(Serialize)]
    struct Odd {
        name: &'static str,
        params: (BTreeMap<&'static str, i32>,),
    }
    let err = db
        .raw(
            "query",
            &Odd {
                name: "get_user",
                params: (BTreeMap::from([("id", 1)]),),
            },
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("parameter $1 is a map; a parameter is nil, bool, int, float, str or bin"),
        "{b}: {err}"
    );
    let err = db.query("get_user", vec![Text("1".into())]).await;
    match b {
        // SQLite gives the column's type to what it is compared with:
        // "1" becomes 1 and the row is found.
        "sqlite" => assert_eq!(err.unwrap().rows.len(), 1),
        _ => {
            let err = err.unwrap_err().to_string();
            assert!(
                err.contains("query \"get_user\" on database \"default\" (postgres): parameter $1: a str cannot be bound to a parameter of type int8"),
                "{err}"
            );
        }
    }

    // Only granted queries run; a name is all a guest can send.
    let err = db.query("secret", vec![]).await.unwrap_err().to_string();
    assert!(
        err.contains("query \"secret\" is not granted to function \"db\"; add it to its `queries`"),
        "{err}"
    );
    let err = db.query("DROP TABLE users", vec![]).await.unwrap_err().to_string();
    assert!(err.contains("query \"DROP TABLE users\" is not granted"), "{err}");

    // A transaction is all or nothing.
    let results = db
        .transaction("transfer", vec![vec![Int(1), Int(30)], vec![Int(2), Int(30)]])
        .await
        .unwrap();
    assert_eq!(
        results.iter().map(|r| r.rows_affected).collect::<Vec<_>>(),
        [1, 1],
        "{b}"
    );
    let balances = [[Int(1), Int(70)], [Int(2), Int(30)]];
    assert_eq!(db.rows("balances", vec![]).await, balances, "{b}");
    // The debit succeeds (1 gains 50) and the credit breaks the CHECK on 2:
    // the debit is undone.
    let err = db
        .transaction("transfer", vec![vec![Int(1), Int(-50)], vec![Int(2), Int(-50)]])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!(
            "query \"transfer\" on database \"default\" ({b}): constraint violated: in \"credit\":"
        )),
        "{err}"
    );
    assert_eq!(
        db.rows("balances", vec![]).await,
        balances,
        "{b}: nothing of the failed transfer remains"
    );
    let err = db
        .transaction("transfer", vec![vec![Int(1), Int(1)]])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("takes 2 parameter lists, one per query; got 1"), "{err}");
    let err = db.query("transfer", vec![]).await.unwrap_err().to_string();
    assert!(
        err.contains("is a transaction: run it with the `transaction` operation"),
        "{err}"
    );
    let err = db.transaction("debit", vec![vec![]]).await.unwrap_err().to_string();
    assert!(err.contains("is a single statement"), "{err}");

    // Migrations are recorded, and applied once: a second load applies none.
    assert_eq!(
        db.rows("migrations", vec![]).await,
        [[Text("001_schema.sql".into())]],
        "{b}"
    );
    drop(services);
    let again = build(
        &backend,
        dir.path(),
        MANIFEST,
        migrations(&[("001_schema.sql", MIGRATION)]),
    )
    .await
    .unwrap();
    let mut db = Db::new(&again);
    assert_eq!(
        db.rows("balances", vec![]).await,
        balances,
        "{b}: the data survived, the schema was not made again"
    );

    // An applied migration that changed stops the load, naming the file.
    let err = build(
        &backend,
        dir.path(),
        MANIFEST,
        migrations(&[("001_schema.sql", &format!("{MIGRATION}\n-- edited"))]),
    )
    .await
    .err()
    .unwrap();
    assert!(
        err.contains("migrations/001_schema.sql") && err.contains("was applied, and its file has changed since"),
        "{err}"
    );
    // A query naming what the schema lacks fails the load at its line.
    let broken = MANIFEST.replace("FROM accounts ORDER BY id", "FROM acounts ORDER BY id");
    let err = build(
        &backend,
        dir.path(),
        &broken,
        migrations(&[("001_schema.sql", MIGRATION)]),
    )
    .await
    .err()
    .unwrap();
    assert!(
        err.contains("atoll.toml:31:7: queries.balances.sql")
            && err.contains("queries.balances.sql: on database \"default\""),
        "{err}"
    );
    assert!(err.contains("acounts"), "{err}");
}

#[tokio::test]
async fn sqlite_keeps_every_rule() {
    exercise(Backend::Sqlite).await;
}

fn fresh_database(server: &PostgresServer) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    server.create_database(&format!(
        "t{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

#[tokio::test]
async fn postgres_keeps_every_rule() {
    exercise(Backend::Postgres(fresh_database(PostgresServer::shared()))).await;
}

/// Nodes starting together apply each migration once: a migration that
/// would fail the second time (a plain CREATE TABLE, an INSERT into a
/// unique column) is run by eight loads at once.
async fn concurrent_starts(backend: Backend, dir: &Path) {
    let once = "CREATE TABLE once (id BIGINT PRIMARY KEY);\nINSERT INTO once VALUES (1);\n";
    let manifest = "[app]\nname = \"m\"\n[queries.count]\nsql = \"SELECT count(*) FROM once\"\n[functions.f]\nsource = \"x.wasm\"\ncapabilities = [\"sql\"]\nqueries = [\"count\"]\n";
    let loads = (0..8).map(|_| {
        let backend = backend.clone();
        let dir = dir.to_path_buf();
        tokio::spawn(async move { build(&backend, &dir, manifest, migrations(&[("001_once.sql", once)])).await })
    });
    let mut services = Vec::new();
    for load in loads {
        services.push(
            load.await
                .unwrap()
                .unwrap_or_else(|e| panic!("{}: {e}", backend.name())),
        );
    }
    let m = Manifest::parse(manifest, Path::new("atoll.toml")).unwrap();
    let grants = services[0].grants_for(&m.functions["f"]).unwrap();
    let mut inv = Invocation::new("f", "r", Arc::new(grants), Arc::new(RequestInfo::default()));
    let payload = rmp_serde::to_vec_named(&Query {
        name: "count",
        params: vec![],
    })
    .unwrap();
    let out: QueryResult = {
        let bytes = inv.host_call("", "sql", "query", &payload).await.unwrap();
        let r: Result_ = rmp_serde::from_slice(&bytes).unwrap();
        QueryResult {
            columns: r.columns,
            rows: r.rows,
            rows_affected: r.rows_affected,
        }
    };
    assert_eq!(out.rows, [[Int(1)]], "{}", backend.name());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_nodes_starting_together_apply_a_migration_once() {
    let dir = tempfile::tempdir().unwrap();
    concurrent_starts(Backend::Sqlite, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_nodes_starting_together_apply_a_migration_once() {
    let dir = tempfile::tempdir().unwrap();
    concurrent_starts(Backend::Postgres(fresh_database(PostgresServer::shared())), dir.path()).await;
}

/// A server that goes away: queries fail with a clear error within the
/// connect timeout, and succeed again once it is back, with no restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_is_a_clear_error_and_recovers_by_itself() {
    let mut server = PostgresServer::start();
    let url = server.create_database("outage");
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::Postgres(url);
    let services = build(
        &backend,
        dir.path(),
        MANIFEST,
        migrations(&[("001_schema.sql", MIGRATION)]),
    )
    .await
    .unwrap();
    let mut db = Db::new(&services);
    assert_eq!(db.rows("balances", vec![]).await.len(), 2);

    server.kill();
    let started = Instant::now();
    let err = db.query("balances", vec![]).await.unwrap_err().to_string();
    assert!(
        err.starts_with("query \"balances\" on database \"default\" (postgres): database unavailable:"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    // Every pooled connection is dead; each fails once and is replaced.
    for _ in 0..3 {
        let _ = db.query("balances", vec![]).await;
    }

    server.restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match db.query("balances", vec![]).await {
            Ok(r) => {
                assert_eq!(r.rows.len(), 2);
                break;
            }
            Err(e) if Instant::now() < deadline => {
                assert!(e.to_string().contains("database unavailable"), "{e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("still failing 20 s after the server came back: {e}"),
        }
    }
}

/// A PostgreSQL server with `ssl = on` that refuses connections without
/// TLS, its certificate (for `localhost` only) signed by a CA made here;
/// the CA, and another that signed nothing, written beside the runtime
/// configuration as `ca.pem` and `other-ca.pem`.
struct TlsSetup {
    server: PostgresServer,
    dir: tempfile::TempDir,
}

fn tls_setup() -> TlsSetup {
    tls_server(false)
}

/// The same, but for a server that also asks each client for a
/// certificate its CA signed, whose common name is the user it logs in as
/// (`hostssl ... cert`). Beside `ca.pem`: `client.pem` and `client.key`
/// for the user `postgres` (and `client-sealed.key`, its key encrypted
/// with the passphrase `pg key pass`); `stranger.pem` and `stranger.key`, the same
/// but signed by another CA; `someone-else.pem` and `someone-else.key`,
/// signed by the CA for another user.
fn client_cert_setup() -> TlsSetup {
    tls_server(true)
}

fn tls_server(client_certs: bool) -> TlsSetup {
    let ca = TestCa::new("atoll test CA");
    let server = PostgresServer::start_tls(&PostgresTls {
        server: ca.issue(&["localhost"]),
        tls_only: true,
        client_ca: client_certs.then(|| ca.pem()),
    });
    server.create_database("tls");
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    write("ca.pem", &ca.pem());
    write("other-ca.pem", &TestCa::new("another CA").pem());
    if client_certs {
        let client = ca.issue(&["postgres"]);
        write("client.pem", &client.cert);
        write("client.key", &client.key);
        write("client-sealed.key", &client.sealed_key("pg key pass"));
        let stranger = TestCa::new("another CA").issue(&["postgres"]);
        write("stranger.pem", &stranger.cert);
        write("stranger.key", &stranger.key);
        let someone_else = ca.issue(&["someone-else"]);
        write("someone-else.pem", &someone_else.cert);
        write("someone-else.key", &someone_else.key);
    }
    TlsSetup { server, dir }
}

impl TlsSetup {
    /// A URL with a password (which no error may show), naming the server
    /// `host` (`localhost`, which its certificate names, or `127.0.0.1`,
    /// which it does not) while connecting to 127.0.0.1 either way.
    fn url(&self, host: &str, tls: &str) -> String {
        format!(
            "postgres://postgres:hunter2@{host}:{}/tls?hostaddr=127.0.0.1&{tls}",
            self.server.port()
        )
    }

    async fn load(&self, host: &str, tls: &str) -> Result<Services, String> {
        let backend = Backend::Postgres(self.url(host, tls));
        build(
            &backend,
            self.dir.path(),
            MANIFEST,
            migrations(&[("001_schema.sql", MIGRATION)]),
        )
        .await
    }

    async fn refused(&self, host: &str, tls: &str) -> String {
        let err = match self.load(host, tls).await {
            Ok(_) => panic!("{tls} (host {host}) connected"),
            Err(e) => e,
        };
        assert!(err.contains("database \"default\" (postgres)"), "{err}");
        assert!(!err.contains("hunter2"), "the password shows in: {err}");
        err
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_over_tls_with_a_private_ca() {
    let tls = tls_setup();
    // The chain and the name checked: named queries work end to end.
    let services = tls
        .load("localhost", "sslmode=verify-full&sslrootcert=ca.pem")
        .await
        .unwrap();
    let mut db = Db::new(&services);
    assert_eq!(
        db.rows("balances", vec![]).await,
        [[Int(1), Int(100)], [Int(2), Int(0)]]
    );
    db.transaction("transfer", vec![vec![Int(1), Int(30)], vec![Int(2), Int(30)]])
        .await
        .unwrap();
    assert_eq!(
        db.rows("balances", vec![]).await,
        [[Int(1), Int(70)], [Int(2), Int(30)]]
    );
    // The chain only, whatever the name; `require` with a root file is the
    // same, as in libpq.
    for mode in ["verify-ca", "require", "prefer"] {
        let services = tls
            .load("127.0.0.1", &format!("sslmode={mode}&sslrootcert=ca.pem"))
            .await
            .unwrap_or_else(|e| panic!("{mode}: {e}"));
        let mut db = Db::new(&services);
        assert_eq!(db.rows("balances", vec![]).await.len(), 2, "{mode}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_refuses_a_server_its_tls_settings_do_not_trust() {
    let tls = tls_setup();
    let other = tls.dir.path().join("other-ca.pem");
    for (host, settings, want) in [
        (
            "localhost",
            "sslmode=verify-full&sslrootcert=other-ca.pem",
            format!(
                "database unavailable: TLS: the server's certificate is not signed by the CA in sslrootcert {}",
                other.display()
            ),
        ),
        (
            "127.0.0.1",
            "sslmode=verify-full&sslrootcert=ca.pem",
            "database unavailable: TLS: the server's certificate is not for the host name connected to".into(),
        ),
        (
            "127.0.0.1",
            "sslmode=verify-ca&sslrootcert=other-ca.pem",
            format!("not signed by the CA in sslrootcert {}", other.display()),
        ),
        // The system's roots: a private CA is not among them.
        (
            "localhost",
            "sslmode=require",
            "database unavailable: TLS: the server's certificate is not signed by a CA the system trusts (give sslrootcert=FILE for a private CA)".into(),
        ),
        (
            "localhost",
            "sslrootcert=system",
            "database unavailable: TLS: the server's certificate is not signed by a CA the system trusts (give sslrootcert=FILE for a private CA)".into(),
        ),
        // This server takes TLS connections only (pg_hba.conf says hostssl).
        (
            "localhost",
            "sslmode=disable",
            "no pg_hba.conf entry for host \"127.0.0.1\", user \"postgres\", database \"tls\", no encryption".into(),
        ),
    ] {
        let err = tls.refused(host, settings).await;
        assert!(err.contains(&want), "{settings}: missing {want:?} in:\n{err}");
    }
}

#[tokio::test]
async fn postgres_requiring_tls_refuses_a_server_without_it() {
    let url = fresh_database(PostgresServer::shared());
    let dir = tempfile::tempdir().unwrap();
    for mode in ["require", "verify-full"] {
        let backend = Backend::Postgres(format!("{url}?sslmode={mode}"));
        let err = match build(&backend, dir.path(), MANIFEST, migrations(&[])).await {
            Ok(_) => panic!("sslmode={mode} connected without TLS"),
            Err(e) => e,
        };
        let want = format!(
            "database \"default\" (postgres): database unavailable: TLS: the server does not offer TLS, and sslmode={mode} insists on it"
        );
        assert!(err.contains(&want), "missing {want:?} in:\n{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_with_a_client_certificate() {
    let tls = client_cert_setup();
    // The server checks the certificate and logs in as its common name
    // (`cert` in pg_hba.conf: no password is asked).
    let services = tls
        .load(
            "localhost",
            "sslmode=verify-full&sslrootcert=ca.pem&sslcert=client.pem&sslkey=client.key",
        )
        .await
        .unwrap();
    let mut db = Db::new(&services);
    db.transaction("transfer", vec![vec![Int(1), Int(30)], vec![Int(2), Int(30)]])
        .await
        .unwrap();
    assert_eq!(
        db.rows("balances", vec![]).await,
        [[Int(1), Int(70)], [Int(2), Int(30)]]
    );
    // The same key encrypted, with its passphrase as libpq takes it.
    let services = tls
        .load(
            "localhost",
            "sslmode=verify-full&sslrootcert=ca.pem&sslcert=client.pem&sslkey=client-sealed.key&sslpassword=pg%20key%20pass",
        )
        .await
        .unwrap();
    assert_eq!(
        Db::new(&services).rows("balances", vec![]).await,
        [[Int(1), Int(70)], [Int(2), Int(30)]]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_refuses_a_client_without_the_certificate_it_wants() {
    let tls = client_cert_setup();
    let at = |name: &str| tls.dir.path().join(name).display().to_string();
    let trusted = "sslmode=verify-full&sslrootcert=ca.pem";
    for (settings, want) in [
        (
            trusted.to_string(),
            "database unavailable: TLS: the server wants a client certificate and none was given: add sslcert=FILE&sslkey=FILE to the URL (PEM: a certificate the server's CA signed for the user, and its key) (the server said: connection requires a valid client certificate)".to_string(),
        ),
        (
            format!("{trusted}&sslcert=stranger.pem&sslkey=stranger.key"),
            format!(
                "database unavailable: TLS: the server does not trust the CA that signed the client certificate in sslcert {} (received fatal alert: UnknownCA)",
                at("stranger.pem")
            ),
        ),
        (
            format!("{trusted}&sslcert=someone-else.pem&sslkey=someone-else.key"),
            format!(
                "database unavailable: TLS: the server did not log in the user \"postgres\" with the client certificate in sslcert {}: its common name (CN) must be the user name",
                at("someone-else.pem")
            ),
        ),
    ] {
        let err = tls.refused("localhost", &settings).await;
        assert!(err.contains(&want), "{settings}: missing {want:?} in:\n{err}");
    }
}
