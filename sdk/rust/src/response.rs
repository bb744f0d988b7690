use crate::Result;

/// What a handler returns: a body plus optional status and headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response {
    status: Option<u16>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    pub fn new(body: impl Into<Vec<u8>>) -> Response {
        Response {
            body: body.into(),
            ..Response::default()
        }
    }

    /// A `text/plain; charset=utf-8` response.
    pub fn text(body: impl Into<String>) -> Response {
        Response::new(body.into()).header("content-type", "text/plain; charset=utf-8")
    }

    /// A JSON response of any serialisable value.
    #[cfg(feature = "json")]
    pub fn json<T: serde::Serialize + ?Sized>(value: &T) -> Result<Response> {
        let body = serde_json::to_vec(value).map_err(|e| crate::Error::msg(format!("encoding JSON: {e}")))?;
        Ok(Response::new(body).header("content-type", "application/json"))
    }

    pub fn status(mut self, status: u16) -> Response {
        self.status = Some(status);
        self
    }

    /// Sets a header, replacing an earlier one of the same name.
    pub fn header(mut self, name: &str, value: &str) -> Response {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Hands status and headers to the host; returns the body.
    pub(crate) fn send(self) -> Result<Vec<u8>> {
        if let Some(status) = self.status {
            crate::host::call_msgpack::<_, ()>("", "response", "set_status", &status)?;
        }
        for (name, value) in &self.headers {
            crate::host::call_msgpack::<_, ()>("", "response", "set_header", &(name, value))?;
        }
        Ok(self.body)
    }
}

/// Anything a handler may return.
pub trait IntoResponse {
    fn into_response(self) -> Response;
}

impl IntoResponse for Response {
    fn into_response(self) -> Response {
        self
    }
}

impl IntoResponse for Vec<u8> {
    fn into_response(self) -> Response {
        Response::new(self)
    }
}

impl IntoResponse for String {
    fn into_response(self) -> Response {
        Response::text(self)
    }
}

impl IntoResponse for &'static str {
    fn into_response(self) -> Response {
        Response::text(self)
    }
}
