//! The host side of `sql.query`: what a guest's point select costs between
//! `__host_call` and its answer (decoding the payload, the grant, the
//! parameter check, the fast path on a read-only connection (or the trip to a SQLite thread), the prepared statement,
//! encoding the rows), on a table of 10,000 rows. Beside it, a `kv.get` on
//! the embedded redb store, the same way, for scale.
//!
//! `cargo bench --workspace --bench sql` (target: a point select under 20 µs)

use atoll_caps::kv::RedbStores;
use atoll_caps::sql::{Granted, SqlDatabase, SqlValue, SqliteDatabase, Statement};
use atoll_caps::{Grants, Invocation, RequestInfo};
use atoll_manifest::Capability;
use criterion::{Criterion, criterion_group, criterion_main};
use std::sync::Arc;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db: Arc<dyn SqlDatabase> = Arc::new(SqliteDatabase::open(&dir.path().join("bench.sqlite"), 4).unwrap());
    let st = |name: &str, sql: &str, params| {
        Arc::new(Statement {
            name: name.into(),
            sql: sql.into(),
            sqlite_sql: sql.replace('$', "?"),
            params,
            max_rows: 1000,
        })
    };
    let create = st(
        "create",
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT)",
        0,
    );
    let insert = st("insert", "INSERT INTO users (id, name, email) VALUES ($1, $2, $3)", 3);
    let get = st("get_user", "SELECT id, name, email FROM users WHERE id = $1", 1);
    rt.block_on(async {
        db.query(create, vec![]).await.unwrap();
        let rows = (0..10_000)
            .map(|i| {
                (
                    insert.clone(),
                    vec![
                        SqlValue::Int(i),
                        SqlValue::Text(format!("user {i}")),
                        SqlValue::Text(format!("u{i}@example.com")),
                    ],
                )
            })
            .collect();
        db.transaction(rows).await.unwrap();
    });

    let mut grants = Grants::with_capabilities([Capability::Sql, Capability::Kv]);
    grants.sql.queries.insert(
        "get_user".into(),
        Granted::Single {
            database: "default".into(),
            db,
            st: get,
        },
    );
    let redb = RedbStores::open(&dir.path().join("kv.redb")).unwrap();
    let store = Arc::new(redb.store("default"));
    grants.kv.stores.insert("default".into(), store.clone());
    rt.block_on(atoll_caps::kv::KvStore::set(&*store, "user:42", b"user 42", None))
        .unwrap();
    let grants = Arc::new(grants);
    let request = Arc::new(RequestInfo::default());

    #[derive(serde::Serialize)]
    struct Query<'a> {
        name: &'a str,
        params: &'a [SqlValue],
    }
    let payload = rmp_serde::to_vec_named(&Query {
        name: "get_user",
        params: &[SqlValue::Int(42)],
    })
    .unwrap();
    let key = rmp_serde::to_vec("user:42").unwrap();
    let mut group = c.benchmark_group("host call");
    group.bench_function("sql.query point select (SQLite)", |b| {
        b.iter(|| {
            let mut inv = Invocation::new("bench", "r", grants.clone(), request.clone());
            let out = rt.block_on(inv.host_call("", "sql", "query", &payload)).unwrap();
            assert!(out.len() > 20);
        })
    });
    group.bench_function("kv.get (redb)", |b| {
        b.iter(|| {
            let mut inv = Invocation::new("bench", "r", grants.clone(), request.clone());
            let out = rt.block_on(inv.host_call("", "kv", "get", &key)).unwrap();
            assert!(out.len() > 5);
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
