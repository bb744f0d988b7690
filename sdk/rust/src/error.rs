use std::fmt;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A function's failure: a message and, optionally, the HTTP status it
/// should produce (500 otherwise).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    status: Option<u16>,
    message: String,
}

impl Error {
    pub fn msg(message: impl Into<String>) -> Error {
        Error {
            status: None,
            message: message.into(),
        }
    }

    /// `Err(Error::status(404, "no such user"))` answers 404.
    pub fn status(status: u16, message: impl Into<String>) -> Error {
        Error {
            status: Some(status),
            message: message.into(),
        }
    }

    pub fn status_code(&self) -> Option<u16> {
        self.status
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<String> for Error {
    fn from(s: String) -> Error {
        Error::msg(s)
    }
}

impl From<&str> for Error {
    fn from(s: &str) -> Error {
        Error::msg(s)
    }
}

impl From<std::str::Utf8Error> for Error {
    fn from(e: std::str::Utf8Error) -> Error {
        Error::status(400, format!("the body is not UTF-8: {e}"))
    }
}

#[cfg(feature = "json")]
impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Error {
        Error::status(400, format!("invalid JSON: {e}"))
    }
}
