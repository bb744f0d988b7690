//! Messaging (capability `msg`, on the function's `publish_topics`):
//! publishing, and requests that wait for a subscription's reply.

use crate::Result;
use crate::host::call_msgpack;
use serde::Serialize;
use std::time::Duration;

#[derive(Serialize)]
struct Publish<'a> {
    topic: &'a str,
    #[serde(with = "serde_bytes")]
    payload: &'a [u8],
    #[serde(skip_serializing_if = "Option::is_none")]
    timeout_ms: Option<u64>,
}

/// Publishes `payload` on `topic`; every subscription whose pattern
/// matches it gets it once.
pub fn publish(topic: &str, payload: &[u8]) -> Result<()> {
    call_msgpack(
        "",
        "msg",
        "publish",
        &Publish {
            topic,
            payload,
            timeout_ms: None,
        },
    )
}

/// Publishes `payload` on `topic` and waits up to `timeout` (at most 60 s,
/// and within the function's own deadline) for the reply: the output of the
/// pipeline of a subscription listening on it.
pub fn request(topic: &str, payload: &[u8], timeout: Duration) -> Result<Vec<u8>> {
    let reply: serde_bytes::ByteBuf = call_msgpack(
        "",
        "msg",
        "request",
        &Publish {
            topic,
            payload,
            timeout_ms: Some(timeout.as_millis().min(u128::from(u64::MAX)) as u64),
        },
    )?;
    Ok(reply.into_vec())
}
