//! `[queries.NAME]`: each one statement with numbered parameters, or a
//! `transaction` of such statements on one database.

use super::{Checker, is_name};
use crate::model::{DEFAULT_MAX_ROWS, MAX_ROWS, Query, QueryBody};
use crate::raw::RawQuery;
use crate::sql_shape;
use std::collections::BTreeMap;
use toml::Spanned;

pub(super) fn check_queries(
    c: &mut Checker,
    raw: &BTreeMap<Spanned<String>, Spanned<RawQuery>>,
) -> BTreeMap<String, Query> {
    let mut out = BTreeMap::new();
    for (name, q) in raw {
        let n = name.get_ref();
        let key = format!("queries.{n}");
        let before = c.errors.len();
        if !is_name(n) {
            let loc = c.loc(name);
            c.err(
                loc,
                &key,
                format!("\"{n}\" is not a valid query name (letters, digits, - and _)"),
            );
        }
        let r = q.get_ref();
        let database = match &r.database {
            Some(d) if !is_name(d.get_ref()) => {
                let loc = c.loc(d);
                c.err(
                    loc,
                    format!("{key}.database"),
                    format!(
                        "\"{}\" is not a valid database name (letters, digits, - and _)",
                        d.get_ref()
                    ),
                );
                String::new()
            }
            Some(d) => d.get_ref().clone(),
            None => "default".to_string(),
        };
        let max_rows = match &r.max_rows {
            None => DEFAULT_MAX_ROWS,
            Some(m) => match usize::try_from(*m.get_ref()) {
                Ok(v) if (1..=MAX_ROWS).contains(&v) => v,
                _ => {
                    let loc = c.loc(m);
                    c.err(loc, format!("{key}.max_rows"), format!("must be from 1 to {MAX_ROWS}"));
                    DEFAULT_MAX_ROWS
                }
            },
        };
        let body = match (&r.sql, &r.transaction) {
            (Some(sql), None) => match sql_shape(sql.get_ref()) {
                Ok(shape) => Some(QueryBody::Sql {
                    sql: sql.get_ref().clone(),
                    shape,
                }),
                Err(e) => {
                    let loc = c.loc(sql);
                    c.err(loc, format!("{key}.sql"), e);
                    None
                }
            },
            (None, Some(list)) => {
                let members: Vec<String> = list.get_ref().iter().map(|m| m.get_ref().clone()).collect();
                if members.is_empty() {
                    let loc = c.loc(list);
                    c.err(loc, format!("{key}.transaction"), "the transaction lists no query");
                }
                for m in list.get_ref() {
                    let member = raw
                        .iter()
                        .find(|(k, _)| k.get_ref() == m.get_ref())
                        .map(|(_, v)| v.get_ref());
                    let problem = match member {
                        None => Some(format!("unknown query \"{}\"", m.get_ref())),
                        Some(member) if member.sql.is_none() => Some(format!(
                            "\"{}\" is not a single statement: a transaction lists `sql` queries only",
                            m.get_ref()
                        )),
                        Some(member) => {
                            let theirs = member.database.as_ref().map_or("default", |d| d.get_ref().as_str());
                            (theirs != database).then(|| {
                                format!(
                                    "\"{}\" runs on database \"{theirs}\", this transaction on \"{database}\": one transaction is on one database",
                                    m.get_ref()
                                )
                            })
                        }
                    };
                    if let Some(p) = problem {
                        let loc = c.loc(m);
                        c.err(loc, format!("{key}.transaction"), p);
                    }
                }
                Some(QueryBody::Transaction(members))
            }
            (Some(_), Some(list)) => {
                let loc = c.loc(list);
                c.err(loc, &key, "a query has `sql` or `transaction`, not both");
                None
            }
            (None, None) => {
                let loc = c.loc(q);
                c.err(
                    loc,
                    &key,
                    "a query needs `sql = \"SELECT ...\"` (one statement, parameters $1, $2...) or `transaction = [\"query\", ...]`",
                );
                None
            }
        };
        if let (Some(body), true) = (body, c.errors.len() == before) {
            out.insert(
                n.clone(),
                Query {
                    name: n.clone(),
                    database,
                    body,
                    max_rows,
                    // An error about the SQL (found when the database
                    // prepares it) points at the SQL.
                    loc: r.sql.as_ref().map_or_else(|| c.loc(name), |s| c.loc(s)),
                },
            );
        }
    }
    out
}
