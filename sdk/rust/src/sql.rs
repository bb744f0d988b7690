//! Named queries (capability `sql`). A function runs only the queries the
//! manifest declares (`[queries.NAME]`) and grants it (`queries = [...]`);
//! it sends a name and the parameters, which the host binds.
//!
//! ```ignore
//! use atoll_sdk::sql;
//! let rows = sql::query("get_user", &[7.into()])?;
//! if let Some(row) = rows.first() {
//!     let name = row.get("name").and_then(|v| v.as_str()).unwrap_or("?");
//! }
//! sql::query("add_user", &[8.into(), "grace".into()])?;
//! // A query declared with `transaction = ["debit", "credit"]`: one list
//! // of parameters per member, all applied or none.
//! sql::transaction("transfer", &[&[1.into(), 30.into()], &[2.into(), 30.into()]])?;
//! ```
//!
//! A failed query (a constraint violated, the database unreachable) is an
//! `Err` whose message names the query and the database; it never traps.

use crate::Result;
use crate::host::call_msgpack;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;

/// A parameter or a column value: MessagePack's scalars.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    Bytes(Vec<u8>),
}

impl Value {
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(f) => Some(*f),
            Value::Int(i) => Some(*i as f64),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(t) => Some(t),
            _ => None,
        }
    }
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            Value::Text(t) => Some(t.as_bytes()),
            _ => None,
        }
    }
    /// A bool, or SQLite's 0/1.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            Value::Int(i) => Some(*i != 0),
            _ => None,
        }
    }
    pub fn is_null(&self) -> bool {
        *self == Value::Null
    }
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Value {
                Value::Int(v.into())
            }
        }
    )*};
}
from_int!(i8, i16, i32, i64, u8, u16, u32);

impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Bool(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Float(v)
    }
}
impl From<f32> for Value {
    fn from(v: f32) -> Value {
        Value::Float(v.into())
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Text(v.to_string())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Text(v)
    }
}
impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Value {
        Value::Bytes(v.to_vec())
    }
}
impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Value {
        Value::Bytes(v)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            Value::Float(f) => s.serialize_f64(*f),
            Value::Text(t) => s.serialize_str(t),
            Value::Bytes(b) => s.serialize_bytes(b),
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Value, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Value;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("nil, bool, int, float, str or bin")
            }
            fn visit_unit<E>(self) -> std::result::Result<Value, E> {
                Ok(Value::Null)
            }
            fn visit_none<E>(self) -> std::result::Result<Value, E> {
                Ok(Value::Null)
            }
            fn visit_bool<E>(self, v: bool) -> std::result::Result<Value, E> {
                Ok(Value::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> std::result::Result<Value, E> {
                Ok(Value::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Value, E> {
                i64::try_from(v).map(Value::Int).map_err(E::custom)
            }
            fn visit_f64<E>(self, v: f64) -> std::result::Result<Value, E> {
                Ok(Value::Float(v))
            }
            fn visit_str<E>(self, v: &str) -> std::result::Result<Value, E> {
                Ok(Value::Text(v.to_string()))
            }
            fn visit_string<E>(self, v: String) -> std::result::Result<Value, E> {
                Ok(Value::Text(v))
            }
            fn visit_bytes<E>(self, v: &[u8]) -> std::result::Result<Value, E> {
                Ok(Value::Bytes(v.to_vec()))
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> std::result::Result<Value, E> {
                Ok(Value::Bytes(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> std::result::Result<Value, A::Error> {
                Err(de::Error::custom("a column value is never an array"))
            }
        }
        d.deserialize_any(V)
    }
}

/// What a query returned: the column names and the rows, and how many rows
/// a write changed.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
pub struct Rows {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
    pub rows_affected: u64,
}

/// One row, with its columns' names.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    columns: &'a [String],
    values: &'a [Value],
}

impl<'a> Row<'a> {
    /// The value of the column called `name`.
    pub fn get(&self, name: &str) -> Option<&'a Value> {
        self.columns.iter().position(|c| c == name).map(|i| &self.values[i])
    }
    /// The value of the `i`th column.
    pub fn at(&self, i: usize) -> Option<&'a Value> {
        self.values.get(i)
    }
    pub fn values(&self) -> &'a [Value] {
        self.values
    }
}

impl Rows {
    pub fn len(&self) -> usize {
        self.rows.len()
    }
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
    pub fn first(&self) -> Option<Row<'_>> {
        self.iter().next()
    }
    pub fn iter(&self) -> impl Iterator<Item = Row<'_>> {
        self.rows.iter().map(|r| Row {
            columns: &self.columns,
            values: r,
        })
    }
}

#[derive(Serialize)]
struct Query<'a> {
    name: &'a str,
    params: &'a [Value],
}

#[derive(Serialize)]
struct Transaction<'a> {
    name: &'a str,
    params: &'a [&'a [Value]],
}

/// Runs the granted query `name` with `params` bound to `$1`, `$2`...
pub fn query(name: &str, params: &[Value]) -> Result<Rows> {
    call_msgpack("", "sql", "query", &Query { name, params })
}

/// Runs the granted transaction `name`: one parameter list per member
/// query, in order; all of them happen or none does.
pub fn transaction(name: &str, params: &[&[Value]]) -> Result<Vec<Rows>> {
    call_msgpack("", "sql", "transaction", &Transaction { name, params })
}
