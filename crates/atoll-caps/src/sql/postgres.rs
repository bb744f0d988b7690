//! The PostgreSQL backend: a pool of connections (deadpool), statements
//! prepared once per connection, TLS as the URL's `sslmode`,
//! `sslrootcert`, `sslcert` and `sslkey` say (see `postgres_tls.rs`).
//!
//! Nothing connects at construction: the pool opens connections on use, so
//! a query while the server is down fails with [`SqlError::Unavailable`]
//! within the connect timeout, and the next one after it is back succeeds.
//! Migrations take a session-level advisory lock on a connection of their
//! own, so nodes starting together apply each migration once.

use super::migrations::{TABLE, pending};
use super::postgres_tls::{self, SslMode, TlsFiles};
use super::{Migration, QueryResult, SqlDatabase, SqlError, SqlValue, Statement};
use async_trait::async_trait;
use bytes::BytesMut;
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use futures_util::TryStreamExt;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{Config, GenericClient};
use tokio_postgres_rustls::MakeRustlsConnect;

/// How long a query waits for a connection (or for one to be made).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The advisory lock migrations hold: one key for every Atoll app, which
/// only serialises migrations, never queries.
const MIGRATION_LOCK: i64 = 0x61_746f_6c6c_6d69; // "atollmi"

pub struct PostgresDatabase {
    pool: Pool,
    config: Config,
    tls: MakeRustlsConnect,
    mode: SslMode,
    files: TlsFiles,
}

impl PostgresDatabase {
    /// A pool of at most `connections`, none opened yet. `files` are the
    /// URL's, resolved.
    pub fn new(url: &str, files: &TlsFiles, connections: usize, name: &str) -> Result<PostgresDatabase, String> {
        let split = postgres_tls::split(url)?;
        let mut config: Config = split
            .client_url
            .parse()
            .map_err(|e| format!("not a PostgreSQL URL: {e}"))?;
        config.connect_timeout(CONNECT_TIMEOUT);
        if config.get_application_name().is_none() {
            config.application_name(format!("atoll ({name})"));
        }
        let tls = MakeRustlsConnect::new(postgres_tls::client_config(split.mode, files)?);
        let manager = Manager::from_config(
            config.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(connections)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| format!("cannot make the connection pool: {e}"))?;
        Ok(PostgresDatabase {
            pool,
            config,
            tls,
            mode: split.mode,
            files: files.clone(),
        })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, SqlError> {
        self.pool.get().await.map_err(|e| match e {
            PoolError::Backend(e) => self.connect_error(e),
            PoolError::Timeout(_) => SqlError::Unavailable(format!("no connection within {CONNECT_TIMEOUT:?}")),
            other => SqlError::Unavailable(other.to_string()),
        })
    }

    /// A failure to connect, with what TLS refused said plainly: the
    /// client's own words stop at "error performing TLS handshake".
    fn connect_error(&self, e: tokio_postgres::Error) -> SqlError {
        let presented = self
            .files
            .client_cert
            .as_ref()
            .map(|c| format!("sslcert {}", c.cert.display()));
        if let Some(tls) = crate::tls::rustls_cause(&e) {
            let why = crate::tls::explain_client_refusal(tls, presented.as_deref(), GIVE_CLIENT_CERT)
                .unwrap_or_else(|| crate::tls::explain(tls, &postgres_tls::trusted(self.files.root_cert.as_deref())));
            return SqlError::Unavailable(format!("TLS: {why}"));
        }
        if let Some(why) = self.client_cert_refused(&e, presented.as_deref()) {
            return SqlError::Unavailable(format!("TLS: {why}"));
        }
        let text = with_causes(&e);
        if text.contains("server does not support TLS") {
            let mode = match self.mode {
                SslMode::VerifyCa => "verify-ca",
                SslMode::VerifyFull => "verify-full",
                _ => "require",
            };
            return SqlError::Unavailable(format!(
                "TLS: the server does not offer TLS, and sslmode={mode} insists on it"
            ));
        }
        classify(e)
    }

    /// A server that asks for client certificates (`cert` in pg_hba.conf,
    /// or `clientcert=verify-full`) takes the TLS handshake without one and
    /// refuses the login after it, in words that do not say what to do.
    fn client_cert_refused(&self, e: &tokio_postgres::Error, presented: Option<&str>) -> Option<String> {
        let db = e.as_db_error().filter(|db| db.code().code() == "28000")?;
        let said = db.message();
        match presented {
            None if said.contains("client certificate") => Some(format!(
                "the server wants a client certificate and none was given: {GIVE_CLIENT_CERT} (the server said: {said})"
            )),
            Some(cert)
                if said.starts_with("certificate authentication failed") || said.contains("clientcert=verify-full") =>
            {
                Some(format!(
                    "the server did not log in the user \"{}\" with the client certificate in {cert}: its common name (CN) must be the user name, unless the server's pg_ident.conf maps it (the server said: {said})",
                    self.config.get_user().unwrap_or_default()
                ))
            }
            _ => None,
        }
    }
}

/// What a URL without a client certificate lacks, said as its settings.
const GIVE_CLIENT_CERT: &str =
    "add sslcert=FILE&sslkey=FILE to the URL (PEM: a certificate the server's CA signed for the user, and its key)";

/// An error and its causes, as one line: tokio-postgres's own message is
/// often only the kind ("error connecting to server").
fn with_causes(e: &tokio_postgres::Error) -> String {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.ends_with(&more) {
            text.push_str(&format!(": {more}"));
        }
        cause = c.source();
    }
    text
}

fn classify(e: tokio_postgres::Error) -> SqlError {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        let mut text = db.message().to_string();
        if let Some(detail) = db.detail() {
            text.push_str(&format!(" ({detail})"));
        }
        return match &code[..2] {
            "23" => SqlError::Constraint(text),
            // Connection exceptions, and the server shutting down or starting.
            "08" | "57" => SqlError::Unavailable(text),
            _ => SqlError::Backend(text),
        };
    }
    if e.is_closed() || std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>()) {
        return SqlError::Unavailable(with_causes(&e));
    }
    SqlError::Backend(with_causes(&e))
}

/// Whether a value of this kind can be bound to a parameter of type `ty`.
fn binds(v: &SqlValue, ty: &Type) -> bool {
    match v {
        SqlValue::Null => true,
        SqlValue::Bool(_) => *ty == Type::BOOL,
        SqlValue::Int(_) => [Type::INT2, Type::INT4, Type::INT8, Type::FLOAT4, Type::FLOAT8].contains(ty),
        SqlValue::Float(_) => [Type::FLOAT4, Type::FLOAT8].contains(ty),
        SqlValue::Text(_) => TEXT_TYPES.contains(ty) || [Type::JSON, Type::JSONB].contains(ty),
        SqlValue::Bytes(_) => *ty == Type::BYTEA,
        SqlValue::Unsupported(_) => false,
    }
}

const TEXT_TYPES: [Type; 5] = [Type::TEXT, Type::VARCHAR, Type::BPCHAR, Type::NAME, Type::UNKNOWN];

/// Parameter types a value can be bound to at all (checked at load).
fn bindable(ty: &Type) -> bool {
    [
        SqlValue::Bool(false),
        SqlValue::Int(0),
        SqlValue::Text(String::new()),
        SqlValue::Bytes(Vec::new()),
    ]
    .iter()
    .any(|v| binds(v, ty))
}

/// Column types a row value can be made of (checked at load).
fn returnable(ty: &Type) -> bool {
    bindable(ty) || *ty == Type::OID
}

impl ToSql for SqlValue {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            SqlValue::Null | SqlValue::Unsupported(_) => Ok(IsNull::Yes),
            SqlValue::Bool(b) => b.to_sql(ty, out),
            SqlValue::Int(i) => match *ty {
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::FLOAT4 => (*i as f32).to_sql(ty, out),
                Type::FLOAT8 => (*i as f64).to_sql(ty, out),
                _ => i.to_sql(ty, out),
            },
            SqlValue::Float(f) => match *ty {
                Type::FLOAT4 => (*f as f32).to_sql(ty, out),
                _ => f.to_sql(ty, out),
            },
            SqlValue::Text(t) => {
                // jsonb's binary form is a version byte, then the text.
                if *ty == Type::JSONB {
                    out.extend_from_slice(&[1]);
                }
                out.extend_from_slice(t.as_bytes());
                Ok(IsNull::No)
            }
            SqlValue::Bytes(b) => b.as_slice().to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// A column value read as one of the six kinds.
struct Out(SqlValue);

impl<'a> FromSql<'a> for Out {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Out, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Out(match *ty {
            Type::BOOL => SqlValue::Bool(bool::from_sql(ty, raw)?),
            Type::INT2 => SqlValue::Int(i16::from_sql(ty, raw)?.into()),
            Type::INT4 => SqlValue::Int(i32::from_sql(ty, raw)?.into()),
            Type::INT8 => SqlValue::Int(i64::from_sql(ty, raw)?),
            Type::OID => SqlValue::Int(u32::from_sql(ty, raw)?.into()),
            Type::FLOAT4 => SqlValue::Float(f32::from_sql(ty, raw)?.into()),
            Type::FLOAT8 => SqlValue::Float(f64::from_sql(ty, raw)?),
            Type::BYTEA => SqlValue::Bytes(raw.to_vec()),
            Type::JSONB => SqlValue::Text(String::from_utf8(raw.get(1..).unwrap_or_default().to_vec())?),
            _ => SqlValue::Text(String::from_utf8(raw.to_vec())?),
        }))
    }

    fn from_sql_null(_: &Type) -> Result<Out, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Out(SqlValue::Null))
    }

    fn accepts(ty: &Type) -> bool {
        returnable(ty)
    }
}

/// One prepared statement on `client` (a connection or a transaction).
async fn execute(
    client: &impl GenericClient,
    prepared: &tokio_postgres::Statement,
    st: &Statement,
    params: &[SqlValue],
) -> Result<QueryResult, SqlError> {
    for (i, (v, ty)) in params.iter().zip(prepared.params()).enumerate() {
        if !binds(v, ty) {
            return Err(SqlError::BadParam {
                index: i + 1,
                message: format!("a {} cannot be bound to a parameter of type {ty}", v.kind()),
            });
        }
    }
    let args = params.iter().map(|p| p as &(dyn ToSql + Sync));
    let columns: Vec<String> = prepared.columns().iter().map(|c| c.name().to_string()).collect();
    if columns.is_empty() {
        let n = client.execute_raw(prepared, args).await.map_err(classify)?;
        return Ok(QueryResult {
            columns,
            rows: Vec::new(),
            rows_affected: n,
        });
    }
    let stream = client.query_raw(prepared, args).await.map_err(classify)?;
    let mut stream = std::pin::pin!(stream);
    let mut rows = Vec::new();
    while let Some(row) = stream.try_next().await.map_err(classify)? {
        if rows.len() == st.max_rows {
            return Err(SqlError::TooManyRows(st.max_rows));
        }
        let mut values = Vec::with_capacity(columns.len());
        for (i, column) in columns.iter().enumerate() {
            let Out(v) = row.try_get(i).map_err(|e| SqlError::BadColumn {
                column: column.clone(),
                message: e.to_string(),
            })?;
            values.push(v);
        }
        rows.push(values);
    }
    // The server counts the rows a SELECT returned too; only a write's
    // count is "affected", as on SQLite.
    let first = st.sql.split_whitespace().next().unwrap_or("").to_ascii_lowercase();
    let reads = matches!(first.as_str(), "select" | "with" | "values" | "table" | "show");
    Ok(QueryResult {
        columns,
        rows,
        rows_affected: if reads { 0 } else { stream.rows_affected().unwrap_or(0) },
    })
}

#[async_trait]
impl SqlDatabase for PostgresDatabase {
    async fn query(&self, st: Arc<Statement>, params: Vec<SqlValue>) -> Result<QueryResult, SqlError> {
        let client = self.client().await?;
        let prepared = client.prepare_cached(&st.sql).await.map_err(classify)?;
        execute(&**client, &prepared, &st, &params).await
    }

    async fn transaction(&self, steps: Vec<(Arc<Statement>, Vec<SqlValue>)>) -> Result<Vec<QueryResult>, SqlError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(classify)?;
        let mut results = Vec::with_capacity(steps.len());
        for (st, params) in &steps {
            let prepared = tx.prepare_cached(&st.sql).await.map_err(classify)?;
            let r = execute(&*tx, &prepared, st, params).await.map_err(|e| match e {
                SqlError::Backend(m) => SqlError::Backend(format!("in \"{}\": {m}", st.name)),
                SqlError::Constraint(m) => SqlError::Constraint(format!("in \"{}\": {m}", st.name)),
                other => other,
            })?;
            results.push(r);
        }
        tx.commit().await.map_err(classify)?;
        Ok(results)
    }

    async fn migrate(&self, migrations: &[Migration]) -> Result<Vec<String>, (String, SqlError)> {
        let at = |e: tokio_postgres::Error| ("migrations".to_string(), classify(e));
        // A connection of its own: the advisory lock belongs to the session,
        // and ends with it even if this node dies half way.
        let (mut client, connection) = self
            .config
            .connect(self.tls.clone())
            .await
            .map_err(|e| ("migrations".to_string(), self.connect_error(e)))?;
        let driver = tokio::spawn(connection);
        let result = async {
            client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK]).await.map_err(at)?;
            client
                .batch_execute(&format!(
                    "CREATE TABLE IF NOT EXISTS {TABLE} (name TEXT PRIMARY KEY, sha256 TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
                ))
                .await
                .map_err(at)?;
            let recorded: BTreeMap<String, String> = client
                .query(&format!("SELECT name, sha256 FROM {TABLE}"), &[])
                .await
                .map_err(at)?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
            let mut applied = Vec::new();
            for m in pending(migrations, &recorded)? {
                let fail = |e: tokio_postgres::Error| (m.path.clone(), classify(e));
                let tx = client.transaction().await.map_err(fail)?;
                tx.batch_execute(&m.sql).await.map_err(fail)?;
                tx.execute(
                    &format!("INSERT INTO {TABLE} (name, sha256) VALUES ($1, $2)"),
                    &[&m.name, &m.sha256],
                )
                .await
                .map_err(fail)?;
                tx.commit().await.map_err(fail)?;
                applied.push(m.name.clone());
            }
            Ok(applied)
        }
        .await;
        drop(client);
        let _ = driver.await;
        result
    }

    async fn check(&self, st: Arc<Statement>) -> Result<(), SqlError> {
        let client = self.client().await?;
        let prepared = client.prepare_cached(&st.sql).await.map_err(classify)?;
        if prepared.params().len() != st.params {
            return Err(SqlError::Backend(format!(
                "PostgreSQL sees {} parameters where $1 to ${} were counted",
                prepared.params().len(),
                st.params
            )));
        }
        for (i, ty) in prepared.params().iter().enumerate() {
            if !bindable(ty) {
                return Err(SqlError::BadParam {
                    index: i + 1,
                    message: format!(
                        "its type is {ty}, which no MessagePack value binds to; cast it in the query (${}::text::{ty})",
                        i + 1
                    ),
                });
            }
        }
        for c in prepared.columns() {
            if !returnable(c.type_()) {
                return Err(SqlError::BadColumn {
                    column: c.name().to_string(),
                    message: format!(
                        "its type is {}, which Atoll does not return; cast it in the query ({}::text)",
                        c.type_(),
                        c.name()
                    ),
                });
            }
        }
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }
}
