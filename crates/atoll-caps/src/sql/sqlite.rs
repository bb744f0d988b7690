//! The embedded backend: one SQLite file in the data directory, in WAL mode
//! (readers never wait for the writer), served by a few threads that each
//! own a connection, so no query ever blocks an async worker.
//!
//! A request is a closure sent over a channel to whichever thread is free;
//! the answer comes back on a oneshot. Statements are prepared once per
//! thread and cached.
//!
//! A read-only query first tries the fast path: run on the caller's thread
//! on a free read-only connection, under a budget of SQLite VM steps. A
//! point select finishes well inside it, and skips the two thread
//! wake-ups of the hand-off, which on an idle machine cost more than the
//! query itself. A query that runs past the budget is interrupted and run
//! again on a SQLite thread, so a scan never holds an async worker for
//! more than the budget. Commits are durable (`synchronous = FULL`): an
//! acknowledged write survives a crash, as with the key-value store.

use super::migrations::{TABLE, pending};
use super::{Migration, QueryResult, SqlDatabase, SqlError, SqlValue, Statement};
use async_trait::async_trait;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, ErrorCode, OpenFlags, ToSql, TransactionBehavior};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// How long a writer waits for another (this process's or another node's
/// on the same file) before the query fails.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// SQLite VM steps between two checks of the fast path's budget.
const STEPS_PER_CHECK: i32 = 1_000;
/// Checks a fast-path query may pass before it is handed to a thread:
/// about 20,000 VM steps, tens of microseconds.
const CHECKS_PER_QUERY: u32 = 20;

pub struct SqliteDatabase {
    jobs: mpsc::Sender<Job>,
    /// Read-only connections for the fast path, each with its budget.
    inline: Mutex<Vec<InlineConnection>>,
}

/// A read-only connection whose progress handler interrupts a query once
/// `budget` checks have passed.
struct InlineConnection {
    conn: Connection,
    budget: Arc<AtomicU32>,
}

impl InlineConnection {
    fn open(file: &Path) -> rusqlite::Result<InlineConnection> {
        let mut conn =
            Connection::open_with_flags(file, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "query_only", true)?;
        conn.set_prepared_statement_cache_capacity(256);
        let budget = Arc::new(AtomicU32::new(0));
        let left = budget.clone();
        conn.progress_handler(
            STEPS_PER_CHECK,
            Some(move || {
                left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                    .is_err()
            }),
        )?;
        Ok(InlineConnection { conn, budget })
    }

    /// The query's result, or `None` if it writes or ran past its budget
    /// (then nothing was changed, and it is run again on a thread).
    fn try_query(&self, st: &Statement, params: &[SqlValue]) -> Option<Result<QueryResult, SqlError>> {
        match self.conn.prepare_cached(&st.sqlite_sql) {
            Ok(stmt) if stmt.readonly() => {}
            _ => return None,
        }
        self.budget.store(CHECKS_PER_QUERY, Ordering::Relaxed);
        let result = execute(&self.conn, st, params);
        self.budget.store(0, Ordering::Relaxed);
        match result {
            Err(SqlError::Interrupted) => None,
            other => Some(other),
        }
    }
}

impl SqliteDatabase {
    /// Opens (or creates) the file, its directory too, with `threads`
    /// connections. Fails if the file cannot be opened as a database.
    pub fn open(file: &Path, threads: usize) -> Result<SqliteDatabase, String> {
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let mut inline = Vec::new();
        for i in 0..threads.max(1) {
            let conn = connect(file).map_err(|e| format!("cannot open {}: {e}", file.display()))?;
            // Opened after a read-write connection, which created the file
            // and its WAL, as a read-only connection cannot.
            inline.push(InlineConnection::open(file).map_err(|e| format!("cannot open {}: {e}", file.display()))?);
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("atoll-sqlite-{i}"))
                .spawn(move || serve(conn, &rx))
                .map_err(|e| format!("cannot start a SQLite thread: {e}"))?;
        }
        Ok(SqliteDatabase {
            jobs: tx,
            inline: Mutex::new(inline),
        })
    }

    /// The fast path: `None` when no read-only connection is free, the
    /// query writes, or it ran past its budget.
    fn query_inline(&self, st: &Statement, params: &[SqlValue]) -> Option<Result<QueryResult, SqlError>> {
        let conn = self.inline.try_lock().ok()?.pop()?;
        let result = conn.try_query(st, params);
        self.inline.lock().unwrap_or_else(|p| p.into_inner()).push(conn);
        result
    }

    /// Runs `f` on one of the database's threads.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, SqlError> + Send + 'static,
    ) -> Result<T, SqlError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let _ = tx.send(f(conn));
        });
        let sent = self.jobs.send(job);
        sent.map_err(|_| SqlError::Unavailable("the SQLite threads have stopped".into()))?;
        rx.await
            .map_err(|_| SqlError::Unavailable("a SQLite thread stopped while running the query".into()))?
    }
}

/// The threads end when the database is dropped (the sender goes away).
fn serve(mut conn: Connection, rx: &Mutex<mpsc::Receiver<Job>>) {
    loop {
        let job = match rx.lock().unwrap_or_else(|p| p.into_inner()).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        job(&mut conn);
    }
}

fn connect(file: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        file,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.set_prepared_statement_cache_capacity(256);
    Ok(conn)
}

fn classify(e: rusqlite::Error) -> SqlError {
    match e.sqlite_error_code() {
        Some(ErrorCode::OperationInterrupted) => SqlError::Interrupted,
        Some(ErrorCode::ConstraintViolation) => SqlError::Constraint(e.to_string()),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            SqlError::Unavailable(format!("{e} (another writer held the database for {BUSY_TIMEOUT:?})"))
        }
        Some(ErrorCode::CannotOpen | ErrorCode::SystemIoFailure | ErrorCode::DiskFull | ErrorCode::ReadOnly) => {
            SqlError::Unavailable(e.to_string())
        }
        _ => SqlError::Backend(e.to_string()),
    }
}

impl ToSql for SqlValue {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            SqlValue::Null | SqlValue::Unsupported(_) => ValueRef::Null,
            SqlValue::Bool(b) => ValueRef::Integer(i64::from(*b)),
            SqlValue::Int(i) => ValueRef::Integer(*i),
            SqlValue::Float(f) => ValueRef::Real(*f),
            SqlValue::Text(t) => ValueRef::Text(t.as_bytes()),
            SqlValue::Bytes(b) => ValueRef::Blob(b),
        }))
    }
}

fn value(v: ValueRef<'_>) -> SqlValue {
    match v {
        ValueRef::Null => SqlValue::Null,
        ValueRef::Integer(i) => SqlValue::Int(i),
        ValueRef::Real(f) => SqlValue::Float(f),
        // SQLite does not check that text is UTF-8; what is not is sent as
        // bytes rather than changed.
        ValueRef::Text(t) => match std::str::from_utf8(t) {
            Ok(s) => SqlValue::Text(s.to_string()),
            Err(_) => SqlValue::Bytes(t.to_vec()),
        },
        ValueRef::Blob(b) => SqlValue::Bytes(b.to_vec()),
    }
}

/// One statement on `conn`.
fn execute(conn: &Connection, st: &Statement, params: &[SqlValue]) -> Result<QueryResult, SqlError> {
    let mut stmt = conn.prepare_cached(&st.sqlite_sql).map_err(classify)?;
    for (i, p) in params.iter().enumerate() {
        stmt.raw_bind_parameter(i + 1, p).map_err(classify)?;
    }
    let columns: Vec<String> = stmt.column_names().map(str::to_string).collect();
    if columns.is_empty() {
        let n = stmt.raw_execute().map_err(classify)?;
        return Ok(QueryResult {
            columns,
            rows: Vec::new(),
            rows_affected: n as u64,
        });
    }
    let writes = !stmt.readonly();
    let mut out = Vec::new();
    let mut rows = stmt.raw_query();
    while let Some(row) = rows.next().map_err(classify)? {
        if out.len() == st.max_rows {
            return Err(SqlError::TooManyRows(st.max_rows));
        }
        let mut values = Vec::with_capacity(columns.len());
        for i in 0..columns.len() {
            values.push(value(row.get_ref(i).map_err(classify)?));
        }
        out.push(values);
    }
    drop(rows);
    Ok(QueryResult {
        columns,
        rows_affected: if writes { conn.changes() } else { 0 },
        rows: out,
    })
}

#[async_trait]
impl SqlDatabase for SqliteDatabase {
    async fn query(&self, st: Arc<Statement>, params: Vec<SqlValue>) -> Result<QueryResult, SqlError> {
        if let Some(result) = self.query_inline(&st, &params) {
            return result;
        }
        self.run(move |conn| {
            let result = execute(conn, &st, &params);
            // A statement that failed half way (a constraint on the third
            // row of an INSERT ... SELECT) is undone by SQLite itself; this
            // only makes sure no transaction is left open on the connection.
            if result.is_err() && !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            result
        })
        .await
    }

    async fn transaction(&self, steps: Vec<(Arc<Statement>, Vec<SqlValue>)>) -> Result<Vec<QueryResult>, SqlError> {
        self.run(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(classify)?;
            let mut results = Vec::with_capacity(steps.len());
            for (st, params) in &steps {
                let r = execute(&tx, st, params).map_err(|e| match e {
                    SqlError::Backend(m) => SqlError::Backend(format!("in \"{}\": {m}", st.name)),
                    SqlError::Constraint(m) => SqlError::Constraint(format!("in \"{}\": {m}", st.name)),
                    other => other,
                })?;
                results.push(r);
            }
            tx.commit().map_err(classify)?;
            Ok(results)
        })
        .await
    }

    async fn migrate(&self, migrations: &[Migration]) -> Result<Vec<String>, (String, SqlError)> {
        let migrations = migrations.to_vec();
        self.run(move |conn| Ok(migrate(conn, &migrations)))
            .await
            .map_err(|e| ("migrations".to_string(), e))?
    }

    async fn check(&self, st: Arc<Statement>) -> Result<(), SqlError> {
        self.run(move |conn| {
            let stmt = conn.prepare_cached(&st.sqlite_sql).map_err(classify)?;
            if stmt.parameter_count() != st.params {
                return Err(SqlError::Backend(format!(
                    "SQLite sees {} parameters where $1 to ${} were counted",
                    stmt.parameter_count(),
                    st.params
                )));
            }
            Ok(())
        })
        .await
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }
}

/// All pending migrations in one `BEGIN IMMEDIATE` transaction: SQLite's
/// write lock is the lock between processes sharing the file, and a
/// failure leaves none of them applied.
fn migrate(conn: &mut Connection, migrations: &[Migration]) -> Result<Vec<String>, (String, SqlError)> {
    let at = |e: rusqlite::Error| ("migrations".to_string(), classify(e));
    conn.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS {TABLE} (name TEXT PRIMARY KEY, sha256 TEXT NOT NULL, applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"
    ))
    .map_err(at)?;
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(at)?;
    let recorded: BTreeMap<String, String> = {
        let mut stmt = tx.prepare(&format!("SELECT name, sha256 FROM {TABLE}")).map_err(at)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(at)?;
        rows.collect::<Result<_, _>>().map_err(at)?
    };
    let mut applied = Vec::new();
    for m in pending(migrations, &recorded)? {
        tx.execute_batch(&m.sql).map_err(|e| (m.path.clone(), classify(e)))?;
        tx.execute(
            &format!("INSERT INTO {TABLE} (name, sha256) VALUES (?1, ?2)"),
            [&m.name, &m.sha256],
        )
        .map_err(|e| (m.path.clone(), classify(e)))?;
        applied.push(m.name.clone());
    }
    tx.commit().map_err(at)?;
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statement(sql: &str, params: usize) -> Statement {
        Statement {
            name: "q".into(),
            sql: sql.into(),
            sqlite_sql: sql.into(),
            params,
            max_rows: 10,
        }
    }

    const COUNT_TO: &str =
        "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < ?1) SELECT count(*) FROM c";

    #[test]
    fn the_fast_path_takes_short_reads_only() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("fast.sqlite");
        let db = SqliteDatabase::open(&file, 1).unwrap();
        connect(&file)
            .unwrap()
            .execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'one');")
            .unwrap();
        let point = statement("SELECT v FROM t WHERE id = ?1", 1);
        let got = db
            .query_inline(&point, &[SqlValue::Int(1)])
            .expect("a point read runs inline");
        assert_eq!(got.unwrap().rows, [vec![SqlValue::Text("one".into())]]);

        // A write is never run there (the connection is read-only besides).
        let write = statement("INSERT INTO t VALUES (?1, 'two')", 1);
        assert!(db.query_inline(&write, &[SqlValue::Int(2)]).is_none());

        // A long query is stopped at the budget and left to a thread...
        let long = statement(COUNT_TO, 1);
        assert!(db.query_inline(&long, &[SqlValue::Int(200_000)]).is_none());
        // ...and the same connection still serves the next short one.
        let short = db.query_inline(&long, &[SqlValue::Int(3)]).expect("short enough");
        assert_eq!(short.unwrap().rows, [vec![SqlValue::Int(3)]]);
    }

    #[tokio::test]
    async fn a_query_past_the_budget_still_answers() {
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteDatabase::open(&dir.path().join("slow.sqlite"), 1).unwrap();
        let long = Arc::new(statement(COUNT_TO, 1));
        let got = db.query(long, vec![SqlValue::Int(200_000)]).await.unwrap();
        assert_eq!(got.rows, [vec![SqlValue::Int(200_000)]]);
    }
}
