//! MessagePack in and out of guests.

use crate::HostCallError;
use serde::{Serialize, de::DeserializeOwned};

/// Decodes exactly one MessagePack value that spans the whole payload.
pub(crate) fn decode<T: DeserializeOwned>(payload: &[u8], what: &str) -> Result<T, HostCallError> {
    strict(payload).ok_or_else(|| HostCallError::BadPayload(format!("expected {what} encoded as MessagePack")))
}

fn strict<T: DeserializeOwned>(payload: &[u8]) -> Option<T> {
    let mut rest = payload;
    let mut de = rmp_serde::Deserializer::new(&mut rest);
    let value = T::deserialize(&mut de).ok()?;
    rest.is_empty().then_some(value)
}

pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    rmp_serde::to_vec_named(value).expect("host values always encode")
}

/// A string payload: a MessagePack `str`, or, for authors calling through
/// raw waPC without a MessagePack library, plain UTF-8. The two cannot be
/// confused: a `str` header byte never starts valid UTF-8 text that is
/// exactly as long as the header says.
pub(crate) fn text(payload: &[u8]) -> String {
    strict::<String>(payload).unwrap_or_else(|| String::from_utf8_lossy(payload).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_accepts_msgpack_and_raw_utf8() {
        assert_eq!(text(&encode("hello")), "hello");
        assert_eq!(text(b"hello"), "hello");
        assert_eq!(text(b""), "");
        // A str header followed by more bytes than it announces is raw text.
        assert_eq!(text(b"\xa1ab"), "\u{fffd}ab");
    }

    #[test]
    fn decode_rejects_trailing_bytes() {
        let mut bytes = encode(&7u16);
        assert_eq!(decode::<u16>(&bytes, "a status").unwrap(), 7);
        bytes.push(0);
        let err = decode::<u16>(&bytes, "a status").unwrap_err();
        assert!(err.to_string().contains("expected a status"));
    }
}
