//! The app's variables (capability `vars`). Secret variables are readable
//! only by functions that list them in `secrets`.

use crate::host::call_msgpack;
use crate::{Error, Result};

/// The variable's value, or `None` if it is declared but has none.
pub fn get(name: &str) -> Result<Option<String>> {
    call_msgpack("", "vars", "get", name)
}

/// The variable's value; no value is an error naming it.
pub fn require(name: &str) -> Result<String> {
    get(name)?.ok_or_else(|| Error::msg(format!("variable \"{name}\" has no value")))
}
