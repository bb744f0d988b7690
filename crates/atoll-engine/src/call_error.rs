//! Why an invocation produced no output, in terms every guest ABI shares:
//! the guest said so itself, or its instance failed.

use crate::Failure;

/// Why an invocation produced no output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// The guest reported an error itself (waPC's `__guest_error`, a CGI
    /// program's malformed response).
    Guest { message: String },
    /// The instance failed: trap, deadline, memory, capacity.
    Failed { failure: Failure, detail: Option<String> },
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Guest { message } => f.write_str(message),
            CallError::Failed { failure, detail: None } => write!(f, "{failure}"),
            CallError::Failed {
                failure,
                detail: Some(d),
            } => write!(f, "{failure}; {d}"),
        }
    }
}

impl std::error::Error for CallError {}
