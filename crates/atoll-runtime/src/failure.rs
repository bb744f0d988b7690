use atoll_engine::{CallError, Failure};

/// A step that produced no output: which function, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepFailure {
    pub function: String,
    pub error: CallError,
    /// Status the function set before failing, if any.
    pub requested_status: Option<u16>,
}

impl StepFailure {
    /// The HTTP status this failure answers with: the function's own 4xx/5xx
    /// if it chose one, 504 for a deadline, 503 at capacity, else 500.
    pub fn status(&self) -> u16 {
        match &self.error {
            CallError::Guest { .. } => self.requested_status.filter(|s| (400..=599).contains(s)).unwrap_or(500),
            CallError::Failed { failure, .. } => match failure {
                Failure::Timeout => 504,
                Failure::AtCapacity | Failure::Busy { .. } => 503,
                _ => 500,
            },
        }
    }

    /// Whether the call was refused for want of capacity (the instance
    /// pool, or the function's own `max_concurrency`): worth retrying soon.
    pub fn is_overload(&self) -> bool {
        matches!(
            self.error,
            CallError::Failed {
                failure: Failure::AtCapacity | Failure::Busy { .. },
                ..
            }
        )
    }

    pub fn message(&self) -> String {
        self.error.to_string()
    }
}

impl StepFailure {
    /// The failure as a state entry: `{"error", "status", "function"}`.
    pub fn to_json(&self) -> bytes::Bytes {
        serde_json::json!({
            "error": self.message(),
            "status": self.status(),
            "function": self.function,
        })
        .to_string()
        .into()
    }
}
