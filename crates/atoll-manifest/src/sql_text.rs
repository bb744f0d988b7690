//! Reading a named query's SQL just far enough to know its parameters.
//!
//! Queries bind parameters as `$1`, `$2`... (PostgreSQL's form; the SQLite
//! backend rewrites them to `?1`, `?2`, which SQLite binds by number). A
//! `$` inside a string, a quoted identifier, a comment or a dollar-quoted
//! body is text, not a parameter, so the scanner follows SQL's quoting.
//! It also finds a second statement after a `;`: a named query is exactly
//! one statement, so a declared query can never smuggle in another.

use std::ops::Range;

/// Most parameters one query may take.
pub const MAX_PARAMS: usize = 100;

/// What the scanner found in a query's SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlShape {
    /// How many parameters it binds: `$1` to `$params`, each used.
    pub params: usize,
    /// Where each `$N` is, and its `N`, in order of appearance.
    pub placeholders: Vec<(Range<usize>, usize)>,
}

impl SqlShape {
    /// The SQL with `$N` written as `?N`, the form SQLite binds by number.
    pub fn numbered_for_sqlite(&self, sql: &str) -> String {
        let mut out = String::with_capacity(sql.len());
        let mut at = 0;
        for (span, n) in &self.placeholders {
            out.push_str(&sql[at..span.start]);
            out.push('?');
            out.push_str(&n.to_string());
            at = span.end;
        }
        out.push_str(&sql[at..]);
        out
    }
}

/// The parameters of one statement, or why it is not acceptable.
pub fn sql_shape(sql: &str) -> Result<SqlShape, String> {
    let b = sql.as_bytes();
    let mut placeholders = Vec::new();
    let mut i = 0;
    let mut ended = false;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        let allowed_after_end =
            c.is_ascii_whitespace() || c == b';' || matches!((c, next), (b'-', Some(b'-')) | (b'/', Some(b'*')));
        if ended && !allowed_after_end {
            return Err("a query is one statement: nothing but comments may follow its `;`".into());
        }
        match c {
            b'\'' | b'"' | b'`' => {
                let close = find_close(b, i + 1, c)
                    .ok_or_else(|| format!("a {} opened at byte {i} is never closed", quote_name(c)))?;
                i = close + 1;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                i = b[i..].iter().position(|&x| x == b'\n').map_or(b.len(), |p| i + p + 1);
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let end = sql[i + 2..].find("*/").ok_or("a /* comment is never closed")?;
                i += 2 + end + 2;
            }
            b'$' if b.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                let start = i;
                i += 1;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                let n: usize = sql[start + 1..i]
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_PARAMS).contains(n))
                    .ok_or_else(|| format!("parameter {} is not one of $1 to ${MAX_PARAMS}", &sql[start..i]))?;
                placeholders.push((start..i, n));
            }
            b'$' => {
                // A dollar-quoted body, `$tag$ ... $tag$`, or a lone `$`.
                let tag_end = b[i + 1..]
                    .iter()
                    .position(|&x| !(x.is_ascii_alphanumeric() || x == b'_'))
                    .map(|p| i + 1 + p);
                match tag_end {
                    Some(e) if b[e] == b'$' => {
                        let tag = &sql[i..=e];
                        let body_end = sql[e + 1..]
                            .find(tag)
                            .ok_or_else(|| format!("the dollar-quoted text {tag} is never closed"))?;
                        i = e + 1 + body_end + tag.len();
                    }
                    _ => i += 1,
                }
            }
            b'?' => {
                return Err("parameters are written $1, $2, ... (not ?), the same for every database".into());
            }
            b';' => {
                ended = true;
                i += 1;
            }
            _ => i += 1,
        }
    }
    let params = placeholders.iter().map(|(_, n)| *n).max().unwrap_or(0);
    for n in 1..=params {
        if !placeholders.iter().any(|(_, m)| *m == n) {
            return Err(format!(
                "${params} is used but ${n} is not: parameters are numbered from $1 without gaps"
            ));
        }
    }
    if sql.trim().trim_end_matches(';').trim().is_empty() {
        return Err("the SQL is empty".into());
    }
    Ok(SqlShape { params, placeholders })
}

fn quote_name(c: u8) -> &'static str {
    match c {
        b'\'' => "string (')",
        b'"' => "quoted identifier (\")",
        _ => "quoted identifier (`)",
    }
}

/// The closing quote, a doubled quote being an escaped one.
fn find_close(b: &[u8], mut i: usize, q: u8) -> Option<usize> {
    while i < b.len() {
        if b[i] == q {
            if b.get(i + 1) == Some(&q) {
                i += 2;
                continue;
            }
            return Some(i);
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_parameters_outside_quotes_and_comments() {
        let s =
            sql_shape("SELECT '$9', \"$8\", $$ $7 $$, $tag$ $6 $tag$ -- $5\n /* $4 */ FROM t WHERE a = $2 AND b = $1")
                .unwrap();
        assert_eq!(s.params, 2);
        let s = sql_shape("SELECT $2, $1, $2").unwrap();
        assert_eq!(s.numbered_for_sqlite("SELECT $2, $1, $2"), "SELECT ?2, ?1, ?2");
        assert_eq!(sql_shape("SELECT 'it''s $1'").unwrap().params, 0);
        assert_eq!(sql_shape("SELECT 1;  -- done\n").unwrap().params, 0);
    }

    #[test]
    fn refuses_what_a_named_query_may_not_be() {
        for (sql, expected) in [
            ("SELECT 1; DROP TABLE users", "one statement"),
            ("SELECT $1, $3", "$3 is used but $2 is not"),
            ("SELECT ?", "not ?"),
            ("SELECT 'open", "never closed"),
            ("SELECT $0", "$0 is not one of"),
            ("SELECT $101", "$101 is not one of"),
            ("  ; ", "empty"),
            ("SELECT /* open", "never closed"),
        ] {
            let err = sql_shape(sql).unwrap_err();
            assert!(err.contains(expected), "{sql}: {err}");
        }
    }
}
