//! Publishing messages (capability `msg`, on the function's `publish_topics`).

use crate::Result;
use crate::host::call_msgpack;
use serde::Serialize;

#[derive(Serialize)]
struct Publish<'a> {
    topic: &'a str,
    #[serde(with = "serde_bytes")]
    payload: &'a [u8],
}

pub fn publish(topic: &str, payload: &[u8]) -> Result<()> {
    call_msgpack("", "msg", "publish", &Publish { topic, payload })
}
