//! `response`: status and headers of what this function returns. Always
//! available: it only shapes the function's own output.
//!
//! | operation | payload | result |
//! |---|---|---|
//! | `set_status` | `uint` 100–999 | empty |
//! | `set_header` | `[name, value]` (replaces earlier values) | empty |
//! | `append_header` | `[name, value]` | empty |
//!
//! The framing of the HTTP message is the host's alone: a guest that could
//! set `content-length` or `transfer-encoding` could end its response early
//! and have the rest read as the response to the next request on the
//! connection. Those headers, and every hop-by-hop one, are refused (see
//! [`crate::ResponseParts::is_host_only`]), as is anything past the limits on the
//! number and total size of headers, so a function's headers cannot escape
//! its memory limit.

use crate::wire::decode;
use crate::{HostCallError, Invocation};
use http::{HeaderName, HeaderValue};

const OPS: &[&str] = &["set_status", "set_header", "append_header"];

pub(crate) fn call(inv: &mut Invocation, op: &str, payload: &[u8]) -> Result<Vec<u8>, HostCallError> {
    match op {
        "set_status" => {
            let status: u16 = decode(payload, "a status code (uint)")?;
            if !(100..=999).contains(&status) {
                return Err(HostCallError::BadPayload(format!(
                    "status {status} is outside 100..=999"
                )));
            }
            inv.response.status = Some(status);
        }
        "set_header" | "append_header" => {
            let (name, value): (String, String) = decode(payload, "[name, value] (array of two str)")?;
            let name = HeaderName::try_from(name.as_str())
                .map_err(|_| HostCallError::BadPayload(format!("\"{name}\" is not a valid header name")))?;
            let value = HeaderValue::try_from(value.as_str())
                .map_err(|_| HostCallError::BadPayload(format!("the value of header \"{name}\" is not valid")))?;
            if op == "set_header" {
                inv.response.set_header(name, value)?;
            } else {
                inv.response.append_header(name, value)?;
            }
        }
        _ => return Err(HostCallError::unknown_op("response", op, OPS)),
    }
    Ok(Vec::new())
}

#[cfg(test)]
mod tests {
    use crate::{Grants, Invocation, RequestInfo};
    use std::sync::Arc;

    fn header(inv: &mut Invocation, op: &str, name: &str, value: &str) -> Result<Vec<u8>, crate::HostCallError> {
        let payload = rmp_serde::to_vec(&(name, value)).unwrap();
        super::call(inv, op, &payload)
    }

    fn invocation() -> Invocation {
        Invocation::new("f", "r", Arc::new(Grants::default()), Arc::new(RequestInfo::default()))
    }

    #[test]
    fn framing_and_hop_by_hop_headers_are_refused() {
        let mut inv = invocation();
        for name in [
            "Content-Length",
            "transfer-encoding",
            "connection",
            "keep-alive",
            "upgrade",
            "te",
            "trailer",
            "proxy-connection",
        ] {
            for op in ["set_header", "append_header"] {
                let err = header(&mut inv, op, name, "1").unwrap_err().to_string();
                assert!(err.contains("set by the host"), "{name}: {err}");
                assert!(err.contains(&name.to_ascii_lowercase()), "{err}");
            }
        }
        assert!(inv.response.headers.is_empty());
        header(&mut inv, "set_header", "content-type", "text/plain").unwrap();
        assert_eq!(inv.response.headers.len(), 1);
    }

    #[test]
    fn header_count_and_size_are_bounded() {
        let mut inv = invocation();
        for i in 0..crate::ResponseParts::MAX_HEADERS {
            header(&mut inv, "append_header", "x-n", &i.to_string()).unwrap();
        }
        let err = header(&mut inv, "append_header", "x-n", "one more")
            .unwrap_err()
            .to_string();
        assert!(err.contains("100 headers"), "{err}");
        // Replacing keeps the count, so it still works at the limit.
        header(&mut inv, "set_header", "x-n", "only").unwrap();
        assert_eq!(inv.response.headers.len(), 1);

        let big = "v".repeat(16 << 10);
        for _ in 0..3 {
            header(&mut inv, "append_header", "x-big", &big).unwrap();
        }
        let err = header(&mut inv, "append_header", "x-big", &big)
            .unwrap_err()
            .to_string();
        assert!(err.contains("64 KiB"), "{err}");
        assert!(inv.response.header_bytes() <= crate::ResponseParts::MAX_HEADER_BYTES);
    }
}
