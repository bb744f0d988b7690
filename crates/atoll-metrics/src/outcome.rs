//! The outcome labels, as types so that every caller spells them the same.

/// How an invocation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvocationOutcome {
    Ok,
    /// The guest reported an error itself.
    Error,
    Trap,
    Timeout,
    OutOfMemory,
    /// No instance was free in the pool, or the function's own limit.
    NoCapacity,
}

impl InvocationOutcome {
    pub fn label(self) -> &'static str {
        match self {
            InvocationOutcome::Ok => "ok",
            InvocationOutcome::Error => "error",
            InvocationOutcome::Trap => "trap",
            InvocationOutcome::Timeout => "timeout",
            InvocationOutcome::OutOfMemory => "out_of_memory",
            InvocationOutcome::NoCapacity => "no_capacity",
        }
    }
}

/// How a host call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostCallOutcome {
    Ok,
    /// Not granted, or no such namespace or operation.
    Refused,
    /// Granted, and the backend or the payload failed.
    Failed,
}

impl HostCallOutcome {
    pub fn label(self) -> &'static str {
        match self {
            HostCallOutcome::Ok => "ok",
            HostCallOutcome::Refused => "refused",
            HostCallOutcome::Failed => "failed",
        }
    }
}
