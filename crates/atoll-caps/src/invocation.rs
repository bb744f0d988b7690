//! One invocation's context: what started it (the request, the pipeline's
//! state), what it has set on its response, and its grants. The host call
//! entry point, [`Invocation::host_call`], lives here; what it reaches is
//! listed in `services.rs`.

use crate::Grants;
use crate::HostCallError;
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
    /// The trace this request belongs to (W3C `traceparent`), if its
    /// trigger started or continued one.
    pub trace: Option<crate::trace::TraceContext>,
}

/// Status and headers a function set on the response.
#[derive(Debug, Clone, Default)]
pub struct ResponseParts {
    pub status: Option<u16>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl ResponseParts {
    /// Headers one invocation may set.
    pub const MAX_HEADERS: usize = 100;
    /// Total bytes of names and values one invocation may set.
    pub const MAX_HEADER_BYTES: usize = 64 << 10;

    /// Headers that frame the message or concern one connection only: the
    /// server writes these itself, and a guest's value would let it forge
    /// the framing of the response (and of the next one on the connection).
    pub fn is_host_only(name: &HeaderName) -> bool {
        Self::HOST_ONLY.contains(&name.as_str())
    }

    /// The names [`ResponseParts::is_host_only`] refuses.
    pub const HOST_ONLY: &[&str] = &[
        "connection",
        "content-length",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "keep-alive",
        "proxy-connection",
        "http2-settings",
    ];

    /// Bytes of names and values set so far.
    pub fn header_bytes(&self) -> usize {
        self.headers.iter().map(entry_bytes).sum()
    }

    /// Replaces every earlier value of `name`.
    pub fn set_header(&mut self, name: HeaderName, value: HeaderValue) -> Result<(), HostCallError> {
        Self::check_name(&name)?;
        let others = || self.headers.iter().filter(|(n, _)| *n != name);
        Self::check_room(others().count(), others().map(entry_bytes).sum(), &name, &value)?;
        self.headers.retain(|(n, _)| *n != name);
        self.headers.push((name, value));
        Ok(())
    }

    /// Adds a value of `name` after any earlier ones.
    pub fn append_header(&mut self, name: HeaderName, value: HeaderValue) -> Result<(), HostCallError> {
        Self::check_name(&name)?;
        Self::check_room(self.headers.len(), self.header_bytes(), &name, &value)?;
        self.headers.push((name, value));
        Ok(())
    }

    fn check_name(name: &HeaderName) -> Result<(), HostCallError> {
        if Self::is_host_only(name) {
            return Err(HostCallError::Failed(format!(
                "header \"{name}\" is set by the host: it frames the HTTP message or concerns the connection, so a function may not set it"
            )));
        }
        Ok(())
    }

    fn check_room(count: usize, bytes: usize, name: &HeaderName, value: &HeaderValue) -> Result<(), HostCallError> {
        if count >= Self::MAX_HEADERS {
            return Err(HostCallError::Failed(format!(
                "cannot set header \"{name}\": a function may set at most {} headers",
                Self::MAX_HEADERS
            )));
        }
        if bytes + name.as_str().len() + value.len() > Self::MAX_HEADER_BYTES {
            return Err(HostCallError::Failed(format!(
                "cannot set header \"{name}\": a function's headers may total at most {} KiB",
                Self::MAX_HEADER_BYTES >> 10
            )));
        }
        Ok(())
    }
}

fn entry_bytes((name, value): &(HeaderName, HeaderValue)) -> usize {
    name.as_str().len() + value.len()
}

/// Everything one invocation of one function may touch. Created per call,
/// dropped with the instance: nothing here outlives the request.
pub struct Invocation {
    pub function: Arc<str>,
    pub request_id: Arc<str>,
    pub grants: Arc<Grants>,
    pub request: Arc<RequestInfo>,
    pub response: ResponseParts,
    pub state: StateView,
    /// When the invocation must be done; linked calls inherit it.
    pub deadline: Option<std::time::Instant>,
    /// The link call that started this invocation, if one did.
    pub link: Option<Arc<crate::links::LinkCall>>,
    /// What runs the functions this one links to; set only for functions
    /// with links.
    pub linker: Option<Arc<dyn crate::links::LinkTarget>>,
    /// This invocation's span, set only when its trace is exported: the
    /// parent of the client spans of its outbound requests.
    pub span: Option<u64>,
    /// The span this invocation's nests under, where it is not the
    /// request's: a linked call's is its caller's invocation.
    pub parent_span: Option<u64>,
}

impl std::fmt::Debug for Invocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invocation")
            .field("function", &self.function)
            .field("request_id", &self.request_id)
            .field("grants", &self.grants)
            .field("link", &self.link)
            .finish_non_exhaustive()
    }
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
            deadline: None,
            link: None,
            linker: None,
            span: None,
            parent_span: None,
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
        let started = std::time::Instant::now();
        let result = crate::services::dispatch(self, binding, namespace, operation, payload).await;
        atoll_metrics::host_call(
            self.namespace_label(namespace),
            HostCallError::outcome(&result),
            started.elapsed(),
        );
        result
    }

    /// `namespace` as a metrics label: one of Atoll's, `link` for a
    /// granted link, `unknown` for anything else a guest makes up.
    fn namespace_label<'a>(&self, namespace: &'a str) -> &'a str {
        if crate::NAMESPACES.contains(&namespace) {
            namespace
        } else if self.grants.links.contains_key(namespace) {
            "link"
        } else {
            "unknown"
        }
    }

    /// waPC's `__console_log`: the guest's log at info level, if granted.
    /// Returns whether the line was written.
    pub fn console_log(&self, message: &str) -> bool {
        crate::log::console(self, message)
    }
}
