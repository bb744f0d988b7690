//! `sql`: named queries on SQLite (embedded, the default) or PostgreSQL.
//!
//! Functions never send SQL. The app declares each query once in
//! `atoll.toml` (`[queries.NAME] sql = "..."`), a function is granted some
//! of them by name (`queries = [...]`), and a guest sends only a name and
//! the parameters, which are bound, never spliced into the text: injection
//! is impossible by construction. A query group declared with
//! `transaction = [...]` runs its members in order in one transaction.
//!
//! Every backend ([`SqlDatabase`]) keeps these rules, which this crate's
//! `tests/sql.rs` checks by running one sequence against each of them:
//!
//! - parameters are positional (`$1`, `$2`...) and typed from MessagePack
//!   (nil, bool, int, float, str, bin); the count must be the query's, and
//!   a value the column's type cannot take is refused with
//!   [`SqlError::BadParam`] naming the parameter, before anything runs;
//! - a result is the column names and the rows (values of the same six
//!   kinds), plus the number of rows a write changed; more rows than the
//!   query's `max_rows` is [`SqlError::TooManyRows`], not a silent cut;
//! - a constraint violation is [`SqlError::Constraint`]: the guest gets an
//!   error it can read, and the database is as it was;
//! - a transaction is all or nothing: if a member fails, none of the
//!   earlier members' writes remain;
//! - migrations (`migrations/*.sql` for the database `default`,
//!   `migrations/NAME/*.sql` for another) are applied in file-name order,
//!   each exactly once, recorded in `atoll_migrations` with their SHA-256,
//!   under a lock, so nodes starting together apply each once; a recorded
//!   migration whose file has changed stops the load;
//! - a backend that is down answers [`SqlError::Unavailable`] and serves
//!   again once it is back, without a restart.
//!
//! | operation | payload | result |
//! |---|---|---|
//! | `query` | map `{name: str, params?: [value]}` | map `{columns: [str], rows: [[value]], rows_affected: uint}` |
//! | `transaction` | map `{name: str, params?: [[value]]}`: one list per member | array of `query` results, one per member |

mod grant;
mod host;
pub mod migrations;
mod postgres;
mod postgres_tls;
pub mod runtime_config;
mod sqlite;
mod value;

pub use grant::{Granted, SqlGrant};
pub use migrations::Migration;
pub use postgres::PostgresDatabase;
pub use postgres_tls::{ClientCert, Passphrase, TlsFiles};
pub use runtime_config::{SqlBackendConfig, SqlLocation};
pub use sqlite::SqliteDatabase;
pub use value::SqlValue;

use crate::capability::{BuildContext, HostCapability};
use crate::{HostCallError, Invocation};
use async_trait::async_trait;
use atoll_manifest::{Capability, Function, Manifest, ManifestError, Query, QueryBody};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// One declared statement, ready for any backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// The query's name, for messages.
    pub name: String,
    /// As declared, with `$1`, `$2`... (PostgreSQL's form).
    pub sql: String,
    /// With `?1`, `?2`... (SQLite's numbered form).
    pub sqlite_sql: String,
    pub params: usize,
    pub max_rows: usize,
}

impl Statement {
    /// The statement of a declared `sql` query; `None` for a transaction.
    pub fn of(q: &Query) -> Option<Statement> {
        match &q.body {
            QueryBody::Sql { sql, shape } => Some(Statement {
                name: q.name.clone(),
                sql: sql.clone(),
                sqlite_sql: shape.numbered_for_sqlite(sql),
                params: shape.params,
                max_rows: q.max_rows,
            }),
            QueryBody::Transaction(_) => None,
        }
    }
}

/// What one statement gave back.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct QueryResult {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<SqlValue>>,
    /// Rows a write inserted, updated or deleted; 0 for a read.
    pub rows_affected: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SqlError {
    #[error("constraint violated: {0}")]
    Constraint(String),
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("more than {0} rows (the query's max_rows): narrow it (LIMIT) or raise its max_rows")]
    TooManyRows(usize),
    /// `index` counts from 1, as `$1` does.
    #[error("parameter ${index}: {message}")]
    BadParam { index: usize, message: String },
    #[error("column \"{column}\": {message}")]
    BadColumn { column: String, message: String },
    #[error("{0}")]
    Backend(String),
    /// Stopped by the SQLite fast path's step budget; the backend runs the
    /// query again where it may take its time, so callers never see it.
    #[error("interrupted: the query ran past the fast path's budget")]
    Interrupted,
}

/// One database. Implementations must be safe to call from many requests
/// at once, and must not block the async workers.
#[async_trait]
pub trait SqlDatabase: Send + Sync {
    /// Runs one statement with its parameters (already counted).
    async fn query(&self, st: Arc<Statement>, params: Vec<SqlValue>) -> Result<QueryResult, SqlError>;
    /// Runs statements in order in one transaction: all or nothing.
    async fn transaction(&self, steps: Vec<(Arc<Statement>, Vec<SqlValue>)>) -> Result<Vec<QueryResult>, SqlError>;
    /// Applies the migrations not yet applied, in order, under a lock that
    /// nodes sharing the database also take. The names it applied.
    async fn migrate(&self, migrations: &[Migration]) -> Result<Vec<String>, (String, SqlError)>;
    /// Prepares the statement against the schema, so a query naming a
    /// missing table fails the load rather than its first request.
    async fn check(&self, st: Arc<Statement>) -> Result<(), SqlError>;
    /// `sqlite` or `postgres`, for messages.
    fn backend(&self) -> &'static str;
}

/// The app's databases and its declared queries, each bound to its database.
pub struct Sql {
    queries: BTreeMap<String, Granted>,
}

impl HostCapability for Sql {
    const KIND: Capability = Capability::Sql;
    type Grant = SqlGrant;

    async fn build(ctx: &BuildContext<'_>) -> Result<Sql, Vec<ManifestError>> {
        let config = runtime_config::parse(ctx.runtime)?;
        let migrations = migrations::by_database(ctx.migrations).map_err(|e| vec![*e])?;
        let manifest = ctx.manifest;
        let mut errors = Vec::new();
        let mut databases: BTreeMap<String, Arc<dyn SqlDatabase>> = BTreeMap::new();
        let needed = manifest
            .queries
            .values()
            .map(|q| q.database.clone())
            .chain(migrations.keys().cloned())
            .collect::<std::collections::BTreeSet<_>>();
        for name in needed {
            let location = runtime_config::sql_location(&config, ctx.data_dir, &name);
            match runtime_config::open(&location, &name).await {
                Ok(db) => {
                    let pending = migrations.get(&name).map(Vec::as_slice).unwrap_or_default();
                    match db.migrate(pending).await {
                        Ok(applied) => {
                            for m in applied {
                                tracing::info!(database = %name, migration = %m, "applied migration");
                            }
                            databases.insert(name, db);
                        }
                        Err((file, e)) => errors.push(
                            atoll_manifest::SourceText::new(std::path::Path::new(&file), "")
                                .file_error(format!("database \"{name}\" ({}): {e}", db.backend())),
                        ),
                    }
                }
                Err(e) => errors.push(manifest.source.file_error(format!("database \"{name}\": {e}"))),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let queries = bind_queries(manifest, &databases).await?;
        Ok(Sql { queries })
    }

    fn grant(&self, f: &Function) -> Result<SqlGrant, String> {
        Ok(SqlGrant {
            queries: f
                .queries
                .iter()
                .filter_map(|q| self.queries.get(q).map(|g| (q.clone(), g.clone())))
                .collect(),
        })
    }

    async fn call(
        inv: &Invocation,
        grant: &SqlGrant,
        _: &str,
        op: &str,
        payload: &[u8],
    ) -> Result<Vec<u8>, HostCallError> {
        host::call(inv, grant, op, payload).await
    }
}

/// Every declared query, checked against its database's schema.
async fn bind_queries(
    manifest: &Manifest,
    databases: &BTreeMap<String, Arc<dyn SqlDatabase>>,
) -> Result<BTreeMap<String, Granted>, Vec<ManifestError>> {
    let mut errors = Vec::new();
    let mut statements: BTreeMap<&str, Arc<Statement>> = BTreeMap::new();
    for q in manifest.queries.values() {
        let (Some(st), Some(db)) = (Statement::of(q), databases.get(&q.database)) else {
            continue;
        };
        let st = Arc::new(st);
        match db.check(st.clone()).await {
            Ok(()) => {
                statements.insert(&q.name, st);
            }
            Err(e) => errors.push(manifest.source.error(
                q.loc,
                format!("queries.{}.sql", q.name),
                format!("on database \"{}\" ({}): {e}", q.database, db.backend()),
            )),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut out = BTreeMap::new();
    for q in manifest.queries.values() {
        let db = databases[&q.database].clone();
        let granted = match &q.body {
            QueryBody::Sql { .. } => Granted::Single {
                database: q.database.clone(),
                db,
                st: statements[q.name.as_str()].clone(),
            },
            QueryBody::Transaction(members) => Granted::Transaction {
                database: q.database.clone(),
                db,
                steps: members.iter().map(|m| statements[m.as_str()].clone()).collect(),
            },
        };
        out.insert(q.name.clone(), granted);
    }
    Ok(out)
}
