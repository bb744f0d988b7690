//! The values that cross between a guest and a database: MessagePack's
//! scalars (nil, bool, int, float, str, bin), nothing else. A parameter of
//! another kind (an array, a map, an extension) is kept as
//! [`SqlValue::Unsupported`] while decoding so the error can say which
//! parameter it was, rather than that the whole payload was bad.

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    Bytes(Vec<u8>),
    /// Decoded from the guest but not bindable; the kind, for the error.
    Unsupported(&'static str),
}

impl SqlValue {
    /// What the value is, in MessagePack's words, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            SqlValue::Null => "nil",
            SqlValue::Bool(_) => "bool",
            SqlValue::Int(_) => "int",
            SqlValue::Float(_) => "float",
            SqlValue::Text(_) => "str",
            SqlValue::Bytes(_) => "bin",
            SqlValue::Unsupported(kind) => kind,
        }
    }
}

impl Serialize for SqlValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            SqlValue::Null | SqlValue::Unsupported(_) => s.serialize_unit(),
            SqlValue::Bool(b) => s.serialize_bool(*b),
            SqlValue::Int(i) => s.serialize_i64(*i),
            SqlValue::Float(f) => s.serialize_f64(*f),
            SqlValue::Text(t) => s.serialize_str(t),
            SqlValue::Bytes(b) => s.serialize_bytes(b),
        }
    }
}

impl<'de> Deserialize<'de> for SqlValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<SqlValue, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = SqlValue;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("nil, bool, int, float, str or bin")
    }
    fn visit_unit<E>(self) -> Result<SqlValue, E> {
        Ok(SqlValue::Null)
    }
    fn visit_none<E>(self) -> Result<SqlValue, E> {
        Ok(SqlValue::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<SqlValue, E> {
        Ok(SqlValue::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<SqlValue, E> {
        Ok(SqlValue::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<SqlValue, E> {
        Ok(i64::try_from(v).map_or(SqlValue::Unsupported("int above 2^63-1"), SqlValue::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<SqlValue, E> {
        Ok(SqlValue::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<SqlValue, E> {
        Ok(SqlValue::Text(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<SqlValue, E> {
        Ok(SqlValue::Text(v))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<SqlValue, E> {
        Ok(SqlValue::Bytes(v.to_vec()))
    }
    fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<SqlValue, E> {
        Ok(SqlValue::Bytes(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<SqlValue, A::Error> {
        while seq.next_element::<de::IgnoredAny>()?.is_some() {}
        Ok(SqlValue::Unsupported("array"))
    }
    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<SqlValue, A::Error> {
        while map.next_entry::<de::IgnoredAny, de::IgnoredAny>()?.is_some() {}
        Ok(SqlValue::Unsupported("map"))
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, _: A) -> Result<SqlValue, A::Error> {
        Err(de::Error::custom("an extension value is not a parameter"))
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, _: D) -> Result<SqlValue, D::Error> {
        Err(de::Error::custom("an extension value is not a parameter"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_scalar_and_flags_the_rest() {
        let values = vec![
            SqlValue::Null,
            SqlValue::Bool(true),
            SqlValue::Int(-5),
            SqlValue::Int(i64::MAX),
            SqlValue::Float(1.5),
            SqlValue::Text("é".into()),
            SqlValue::Bytes(vec![0, 255]),
        ];
        let bytes = rmp_serde::to_vec(&values).unwrap();
        let back: Vec<SqlValue> = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(back, values);
        let odd = rmp_serde::to_vec(&(vec![1, 2], std::collections::BTreeMap::from([("a", 1)]), u64::MAX)).unwrap();
        let back: Vec<SqlValue> = rmp_serde::from_slice(&odd).unwrap();
        assert_eq!(
            back.iter().map(SqlValue::kind).collect::<Vec<_>>(),
            ["array", "map", "int above 2^63-1"]
        );
    }
}
