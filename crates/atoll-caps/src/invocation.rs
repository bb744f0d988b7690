use crate::grants::Grants;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use std::collections::BTreeMap;
use std::sync::Arc;

/// What started the pipeline an invocation belongs to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum TriggerKind {
    #[default]
    Http,
    Schedule {
        name: String,
    },
    Message {
        topic: String,
    },
}

/// The outputs of a pipeline's earlier steps, by key.
pub type State = BTreeMap<String, Bytes>;

/// The part of the state one call may read: all of it, or only the
/// aliases its step's `with` declares.
#[derive(Debug, Clone, Default)]
pub struct StateView {
    entries: Arc<State>,
    aliases: Option<Arc<Vec<(String, String)>>>,
}

impl StateView {
    pub fn new(entries: Arc<State>, aliases: Option<Arc<Vec<(String, String)>>>) -> StateView {
        StateView { entries, aliases }
    }

    pub fn get(&self, key: &str) -> Option<Bytes> {
        match &self.aliases {
            None => self.entries.get(key).cloned(),
            Some(aliases) => aliases
                .iter()
                .find(|(alias, _)| alias == key)
                .and_then(|(_, target)| self.entries.get(target).cloned()),
        }
    }

    pub fn keys(&self) -> Vec<String> {
        match &self.aliases {
            None => self.entries.keys().cloned().collect(),
            Some(aliases) => {
                let mut keys: Vec<String> = aliases
                    .iter()
                    .filter(|(_, t)| self.entries.contains_key(t))
                    .map(|(a, _)| a.clone())
                    .collect();
                keys.sort();
                keys
            }
        }
    }
}

/// The HTTP request (or trigger input) an invocation serves, as functions
/// see it through the `request` namespace. It keeps hyper's own types, so
/// nothing is copied unless a function asks for it.
#[derive(Debug, Clone, Default)]
pub struct RequestInfo {
    pub method: Method,
    pub uri: Uri,
    /// Route parameters (`:name`, `*rest`), percent-decoded, in route order.
    pub params: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub trigger: TriggerKind,
}

/// Status and headers a function set on the response.
#[derive(Debug, Clone, Default)]
pub struct ResponseParts {
    pub status: Option<u16>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// Why a host call failed. The `Display` text is what the guest receives
/// through `__host_error`, so it says what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostCallError {
    #[error(
        "capability \"{namespace}\" is not granted to function \"{function}\"; add \"{namespace}\" to its `capabilities` in atoll.toml"
    )]
    NotGranted { namespace: String, function: String },
    #[error("unknown namespace \"{0}\" (known: {known})", known = crate::NAMESPACES.join(", "))]
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

/// Everything one invocation of one function may touch. Created per call,
/// dropped with the instance: nothing here outlives the request.
#[derive(Debug)]
pub struct Invocation {
    pub function: Arc<str>,
    pub request_id: Arc<str>,
    pub grants: Arc<Grants>,
    pub request: Arc<RequestInfo>,
    pub response: ResponseParts,
    pub state: StateView,
}

impl Invocation {
    pub fn new(
        function: impl Into<Arc<str>>,
        request_id: impl Into<Arc<str>>,
        grants: Arc<Grants>,
        request: Arc<RequestInfo>,
    ) -> Invocation {
        Invocation {
            function: function.into(),
            request_id: request_id.into(),
            grants,
            request,
            response: ResponseParts::default(),
            state: StateView::default(),
        }
    }

    /// The same invocation, seeing `state`.
    pub fn with_state(mut self, state: StateView) -> Invocation {
        self.state = state;
        self
    }

    /// The one door to the host. `binding` names a resource within the
    /// namespace (a key-value store, say) where the namespace has several.
    pub async fn host_call(
        &mut self,
        binding: &str,
        namespace: &str,
        operation: &str,
        payload: &[u8],
    ) -> Result<Vec<u8>, HostCallError> {
        crate::namespaces::dispatch(self, binding, namespace, operation, payload).await
    }

    /// waPC's `__console_log`: the guest's log at info level, if granted.
    /// Returns whether the line was written.
    pub fn console_log(&self, message: &str) -> bool {
        crate::namespaces::log::console(self, message)
    }
}
