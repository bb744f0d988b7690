//! The `sql` namespace: a granted query by name, its parameters bound.

use super::{Granted, SqlError, SqlGrant, SqlValue, Statement};
use crate::wire::{decode, encode};
use crate::{HostCallError, Invocation};
use serde::Deserialize;
use std::sync::Arc;

const OPS: &[&str] = &["query", "transaction"];

#[derive(Deserialize)]
struct Query {
    name: String,
    #[serde(default)]
    params: Vec<SqlValue>,
}

#[derive(Deserialize)]
struct Transaction {
    name: String,
    #[serde(default)]
    params: Vec<Vec<SqlValue>>,
}

pub(super) async fn call(
    inv: &Invocation,
    grant: &SqlGrant,
    op: &str,
    payload: &[u8],
) -> Result<Vec<u8>, HostCallError> {
    match op {
        "query" => {
            let q: Query = decode(payload, "{name: str, params?: [nil|bool|int|float|str|bin]}")?;
            let granted = find(inv, grant, &q.name)?;
            let Granted::Single { st, db, database } = granted else {
                return Err(HostCallError::BadPayload(format!(
                    "query \"{}\" is a transaction: run it with the `transaction` operation",
                    q.name
                )));
            };
            check_params(st, &q.params)?;
            let result = db
                .query(st.clone(), q.params)
                .await
                .map_err(|e| failed(&q.name, database, db.backend(), e))?;
            Ok(encode(&result))
        }
        "transaction" => {
            let t: Transaction = decode(payload, "{name: str, params?: [[value], ...]} (one list per member)")?;
            let granted = find(inv, grant, &t.name)?;
            let Granted::Transaction { steps, db, database } = granted else {
                return Err(HostCallError::BadPayload(format!(
                    "query \"{}\" is a single statement: run it with the `query` operation",
                    t.name
                )));
            };
            if t.params.len() != steps.len() {
                return Err(HostCallError::BadPayload(format!(
                    "transaction \"{}\" has {} queries ({}), so it takes {} parameter lists, one per query; got {}",
                    t.name,
                    steps.len(),
                    steps.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", "),
                    steps.len(),
                    t.params.len()
                )));
            }
            for (st, params) in steps.iter().zip(&t.params) {
                check_params(st, params).map_err(|e| match e {
                    HostCallError::BadPayload(m) => {
                        HostCallError::BadPayload(format!("in transaction \"{}\": {m}", t.name))
                    }
                    other => other,
                })?;
            }
            let work: Vec<(Arc<Statement>, Vec<SqlValue>)> = steps.iter().cloned().zip(t.params).collect();
            let results = db
                .transaction(work)
                .await
                .map_err(|e| failed(&t.name, database, db.backend(), e))?;
            Ok(encode(&results))
        }
        _ => Err(HostCallError::unknown_op("sql", op, OPS)),
    }
}

fn find<'g>(inv: &Invocation, grant: &'g SqlGrant, name: &str) -> Result<&'g Granted, HostCallError> {
    grant.queries.get(name).ok_or_else(|| {
        HostCallError::Failed(format!(
            "query \"{name}\" is not granted to function \"{}\"; add it to its `queries` in atoll.toml (granted: {})",
            inv.function,
            grant.names()
        ))
    })
}

/// The count, and the kinds only MessagePack scalars can be.
fn check_params(st: &Statement, params: &[SqlValue]) -> Result<(), HostCallError> {
    if params.len() != st.params {
        let takes = match st.params {
            0 => "no parameters".to_string(),
            1 => "1 parameter ($1)".to_string(),
            n => format!("{n} parameters ($1 to ${n})"),
        };
        return Err(HostCallError::BadPayload(format!(
            "query \"{}\" takes {takes}, got {}",
            st.name,
            params.len()
        )));
    }
    if let Some((i, v)) = params
        .iter()
        .enumerate()
        .find(|(_, v)| matches!(v, SqlValue::Unsupported(_)))
    {
        return Err(HostCallError::BadPayload(format!(
            "query \"{}\": parameter ${} is {} {}; a parameter is nil, bool, int, float, str or bin",
            st.name,
            i + 1,
            if v.kind().starts_with(['a', 'e', 'i', 'o', 'u']) {
                "an"
            } else {
                "a"
            },
            v.kind()
        )));
    }
    Ok(())
}

/// The error the guest reads: which query, which database, what happened.
fn failed(query: &str, database: &str, backend: &str, e: SqlError) -> HostCallError {
    let text = format!("query \"{query}\" on database \"{database}\" ({backend}): {e}");
    match e {
        SqlError::BadParam { .. } => HostCallError::BadPayload(text),
        _ => HostCallError::Failed(text),
    }
}
