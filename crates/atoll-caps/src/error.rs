//! Why a host call failed, in words the guest receives: every capability
//! returns these, and the helpers that build the common ones live beside
//! the type so no capability has to call back into a dispatcher for them.

/// Why a host call failed. The `Display` text is what the guest receives
/// through `__host_error`, so it says what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostCallError {
    #[error(
        "capability \"{namespace}\" is not granted to function \"{function}\"; add \"{namespace}\" to its `capabilities` in atoll.toml"
    )]
    NotGranted { namespace: String, function: String },
    #[error(
        "unknown namespace \"{0}\" (known: {known}); to call another function of the app, list it in this function's `links`",
        known = crate::NAMESPACES.join(", ")
    )]
    UnknownNamespace(String),
    #[error("namespace \"{namespace}\" has no operation \"{operation}\" (known: {known})")]
    UnknownOperation {
        namespace: String,
        operation: String,
        known: String,
    },
    #[error("bad payload: {0}")]
    BadPayload(String),
    #[error("{0}")]
    Failed(String),
}

impl HostCallError {
    /// `op` is not one of `namespace`'s operations, `known`.
    pub fn unknown_op(namespace: &str, op: &str, known: &[&str]) -> HostCallError {
        HostCallError::UnknownOperation {
            namespace: namespace.to_string(),
            operation: op.to_string(),
            known: known.join(", "),
        }
    }

    /// `function` was not granted the capability behind `namespace`.
    pub fn not_granted(namespace: &str, function: &str) -> HostCallError {
        HostCallError::NotGranted {
            namespace: namespace.to_string(),
            function: function.to_string(),
        }
    }

    /// How a host call that ended with `result` counts in the metrics.
    pub fn outcome<T>(result: &Result<T, HostCallError>) -> atoll_metrics::HostCallOutcome {
        use atoll_metrics::HostCallOutcome as O;
        match result {
            Ok(_) => O::Ok,
            Err(
                HostCallError::NotGranted { .. }
                | HostCallError::UnknownNamespace(_)
                | HostCallError::UnknownOperation { .. },
            ) => O::Refused,
            Err(HostCallError::BadPayload(_) | HostCallError::Failed(_)) => O::Failed,
        }
    }
}
