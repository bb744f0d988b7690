//! `response`: status and headers of what this function returns. Always
//! available: it only shapes the function's own output.
//!
//! | operation | payload | result |
//! |---|---|---|
//! | `set_status` | `uint` 100–999 | empty |
//! | `set_header` | `[name, value]` (replaces earlier values) | empty |
//! | `append_header` | `[name, value]` | empty |

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
                inv.response.headers.retain(|(n, _)| *n != name);
            }
            inv.response.headers.push((name, value));
        }
        _ => return Err(super::unknown_op("response", op, OPS)),
    }
    Ok(Vec::new())
}
