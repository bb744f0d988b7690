//! Outbound HTTP (capability `http`), to the function's `allowed_hosts`.
//!
//! ```ignore
//! let zen = atoll_sdk::http::get("https://api.github.com/zen")?.text()?;
//! let created = atoll_sdk::http::Request::post("https://api.example.com/items")
//!     .header("content-type", "application/json")
//!     .body(br#"{"name":"x"}"#.to_vec())
//!     .send()?;
//! ```
//!
//! Credentials declared in the manifest's `[[http_auth]]` are added by the
//! host: the function never sees them.

use crate::host::call_msgpack;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Serialize)]
pub struct Request {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    #[serde(with = "serde_bytes")]
    body: Vec<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timeout_ms: Option<u64>,
}

impl Request {
    pub fn new(method: &str, url: &str) -> Request {
        Request {
            method: method.to_string(),
            url: url.to_string(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout_ms: None,
        }
    }
    pub fn get(url: &str) -> Request {
        Request::new("GET", url)
    }
    pub fn post(url: &str) -> Request {
        Request::new("POST", url)
    }
    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = body.into();
        self
    }
    pub fn timeout(mut self, timeout: Duration) -> Request {
        self.timeout_ms = Some(timeout.as_millis() as u64);
        self
    }
    pub fn send(self) -> Result<Response> {
        fetch(&self)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> Result<String> {
        String::from_utf8(self.body.clone()).map_err(|e| Error::msg(format!("the response is not UTF-8: {e}")))
    }
    #[cfg(feature = "json")]
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body)
            .map_err(|e| Error::msg(format!("the response is not the JSON expected: {e}")))
    }
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Sends a request; a refused or failed request is an `Err` saying why.
pub fn fetch(req: &Request) -> Result<Response> {
    call_msgpack("", "http", "request", req)
}

pub fn get(url: &str) -> Result<Response> {
    fetch(&Request::get(url))
}
