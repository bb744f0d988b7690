use crate::{Error, Result};
use serde::Deserialize;
use std::cell::OnceCell;

/// The input of one invocation: its body, and (fetched from the host on
/// first use) method, path, route parameters, query and headers.
pub struct Request {
    body: Vec<u8>,
    meta: OnceCell<Meta>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Meta {
    trigger: String,
    source: String,
    method: String,
    path: String,
    params: Vec<(String, String)>,
    query: String,
    headers: Vec<(String, String)>,
}

impl Request {
    pub(crate) fn new(body: Vec<u8>) -> Request {
        Request {
            body,
            meta: OnceCell::new(),
        }
    }

    fn meta(&self) -> &Meta {
        self.meta.get_or_init(|| {
            // Outside an HTTP trigger there may be no request metadata.
            crate::host::call_msgpack::<_, Meta>("", "request", "get", &()).unwrap_or_default()
        })
    }

    /// This call's payload: the request body, or a step's input in a pipeline.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    pub fn into_body(self) -> Vec<u8> {
        self.body
    }

    /// The body as UTF-8 text; not UTF-8 is a 400.
    pub fn text(&self) -> Result<&str> {
        Ok(std::str::from_utf8(&self.body)?)
    }

    /// The body parsed as JSON; invalid JSON is a 400.
    #[cfg(feature = "json")]
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        Ok(serde_json::from_slice(&self.body)?)
    }

    pub fn method(&self) -> &str {
        &self.meta().method
    }

    /// What started the pipeline: `http`, `schedule` or `message`.
    pub fn trigger(&self) -> &str {
        &self.meta().trigger
    }

    /// The schedule's name or the message's topic; empty for HTTP.
    pub fn source(&self) -> &str {
        &self.meta().source
    }

    pub fn path(&self) -> &str {
        &self.meta().path
    }

    /// A route parameter: `:name` or `*rest` in the route's path.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.meta()
            .params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The raw query string, without `?`.
    pub fn query(&self) -> &str {
        &self.meta().query
    }

    /// One query parameter, percent-decoded; the first if repeated.
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query().split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k) == name).then(|| percent_decode(v))
        })
    }

    /// A header by name, any case; repeated headers joined with `, `.
    pub fn header(&self, name: &str) -> Option<String> {
        let values: Vec<&str> = self
            .meta()
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect();
        (!values.is_empty()).then(|| values.join(", "))
    }

    /// All headers, lower-case names, one entry per value.
    pub fn headers(&self) -> &[(String, String)] {
        &self.meta().headers
    }

    /// A required route parameter: missing is a 400 naming it.
    pub fn require_param(&self, name: &str) -> Result<&str> {
        self.param(name)
            .ok_or_else(|| Error::status(400, format!("missing route parameter \"{name}\"")))
    }
}

fn percent_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = match bytes[i] {
            b'+' => Some((b' ', 1)),
            b'%' if i + 2 < bytes.len() => hex(bytes[i + 1]).zip(hex(bytes[i + 2])).map(|(h, l)| (h << 4 | l, 3)),
            _ => None,
        };
        let (byte, width) = decoded.unwrap_or((bytes[i], 1));
        out.push(byte);
        i += width;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn decodes_queries() {
        assert_eq!(percent_decode("a%20b+c"), "a b c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("caf%C3%A9"), "café");
    }
}
