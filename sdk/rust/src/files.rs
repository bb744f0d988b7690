//! The app's static files (capability `files`): `static/` beside the manifest.

use crate::host::call_msgpack;
use crate::{Error, Result};

/// The file's bytes, or `None` if there is no such file.
pub fn read(path: &str) -> Result<Option<Vec<u8>>> {
    let v: Option<serde_bytes::ByteBuf> = call_msgpack("", "files", "read", path)?;
    Ok(v.map(|b| b.into_vec()))
}

pub fn read_to_string(path: &str) -> Result<Option<String>> {
    match read(path)? {
        Some(bytes) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|e| Error::msg(format!("{path} is not UTF-8: {e}"))),
        None => Ok(None),
    }
}

pub fn exists(path: &str) -> Result<bool> {
    call_msgpack("", "files", "exists", path)
}

/// Names in a directory (`""` for the root); directories end in `/`.
pub fn list(dir: &str) -> Result<Vec<String>> {
    call_msgpack("", "files", "list", dir)
}
