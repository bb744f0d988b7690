//! Loading a component once and running it in a fresh instance per
//! request: `wasi:http/incoming-handler.handle` with the request, its
//! response read back beside it.

use crate::check::{LoadError, foreign_imports, is_core_module, uncompilable, unprovided};
use crate::exchange;
use crate::outbound::Outbound;
use crate::state::ComponentState;
use atoll_caps::{Invocation, ResponseParts};
use atoll_engine::{CallError, Engine, InstanceLimiter, Limits, ModuleKey, classify_failure};
use atoll_manifest::Capability;
use bytes::Bytes;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use wasmtime::Store;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder};
use wasmtime_wasi_http::WasiHttpCtx;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;

/// Bump when the preparation of components changes, so cached artifacts
/// from an older scheme are not reused.
const VARIANT: &str = "wasi-http-v1";
/// Where `static/` appears inside the sandbox, with the `files` grant.
pub const STATIC_MOUNT: &str = "/static";
/// How much of a component's stderr reaches the log per request.
const STDERR_CAP: usize = 16 << 10;

/// The wasi:http ABI for one engine: its linker is built once and shared
/// by every component.
#[derive(Clone)]
pub struct WasiHttpAbi {
    engine: Engine,
    linker: Arc<Linker<ComponentState>>,
}

/// Facts about a loaded component, for `atoll inspect` and logs.
#[derive(Debug, Clone)]
pub struct FunctionInfo {
    /// SHA-256 of the component, hex.
    pub sha256: String,
    /// Size of the component in bytes.
    pub size: usize,
    /// The interfaces it imports, as it names them.
    pub imports: Vec<String>,
}

/// What a component sees around each request.
#[derive(Debug, Clone, Default)]
pub struct Setting {
    /// The app's static files on disk, preopened read-only at
    /// [`STATIC_MOUNT`] for invocations granted `files`.
    pub static_dir: Option<Arc<Path>>,
}

/// One component, ready to handle requests in a fresh instance each. Cheap
/// to clone: the compiled component and its linking are shared.
#[derive(Clone)]
pub struct WasiHttpFunction {
    engine: Engine,
    pre: ProxyPre<ComponentState>,
    limits: Limits,
    max_output: usize,
    setting: Setting,
    /// What was loaded.
    pub info: FunctionInfo,
}

/// The result of one invocation. `teardown` owns the instance: drop it
/// after the response is on its way, not before.
pub struct Invoked {
    /// The response body, or why there is none.
    pub result: Result<Vec<u8>, CallError>,
    /// The response's status and headers.
    pub response: ResponseParts,
    /// The spent instance.
    pub teardown: Teardown,
}

/// An instance waiting to be torn down.
pub struct Teardown(#[allow(dead_code)] Store<ComponentState>);

impl WasiHttpAbi {
    /// Links WASI 0.2 (cli, clocks, filesystem, io, random, sockets),
    /// wasi:http and the state interfaces (keyvalue, config, logging) once
    /// for every component.
    pub fn new(engine: &Engine) -> Result<WasiHttpAbi, LoadError> {
        let mut linker = Linker::new(engine.wasmtime());
        let link = |l: &mut Linker<ComponentState>| -> wasmtime::Result<()> {
            wasmtime_wasi::p2::add_to_linker_async(l)?;
            wasmtime_wasi_http::p2::add_only_http_to_linker_async(l)?;
            crate::wasi_state::add_to_linker(l)
        };
        link(&mut linker).map_err(|e| LoadError(format!("cannot set up the WASI imports: {e:#}")))?;
        Ok(WasiHttpAbi {
            engine: engine.clone(),
            linker: Arc::new(linker),
        })
    }

    /// Compiles (or fetches from the compile cache), checks and
    /// pre-instantiates a component. CPU-bound: call it off the async
    /// workers. There is no pre-initialisation: Wizer snapshots core
    /// modules, not components.
    pub fn load(&self, wasm: &[u8], limits: Limits, max_output: usize) -> Result<WasiHttpFunction, LoadError> {
        if is_core_module(wasm) {
            return Err(LoadError(
                "is a core WebAssembly module, not a component: abi = \"wasi-http\" serves components exporting wasi:http/incoming-handler (build for wasm32-wasip2, or with cargo component); a waPC module takes abi = \"wapc\", a WASI command abi = \"wagi\"".into(),
            ));
        }
        let key = ModuleKey::new(wasm, VARIANT);
        let component = self
            .engine
            .component_cached(&key, wasm)
            .map_err(|e| uncompilable(wasm, &e))?;
        foreign_imports(&component)?;
        let imports: Vec<String> = component
            .component_type()
            .imports(self.engine.wasmtime())
            .map(|(name, _)| name.to_string())
            .collect();
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| unprovided(&e, &imports))?;
        let pre = ProxyPre::new(instance_pre).map_err(|_| {
            LoadError(
                "does not export wasi:http/incoming-handler@0.2.x, so it is not an HTTP component; a WASI command (a program with `main`) is served with abi = \"wagi\"".into(),
            )
        })?;
        Ok(WasiHttpFunction {
            engine: self.engine.clone(),
            pre,
            limits,
            max_output,
            setting: Setting::default(),
            info: FunctionInfo {
                sha256: key.sha256_hex(),
                size: wasm.len(),
                imports,
            },
        })
    }
}

impl WasiHttpFunction {
    /// The same component as another function with other limits.
    pub fn with_limits(&self, limits: Limits, max_output: usize) -> WasiHttpFunction {
        WasiHttpFunction {
            limits,
            max_output,
            ..self.clone()
        }
    }

    /// The same function, seeing `setting` around each request.
    pub fn with_setting(mut self, setting: Setting) -> WasiHttpFunction {
        self.setting = setting;
        self
    }

    /// Hands the request (with `payload` as its body) to the component in
    /// a brand-new instance, under the function's deadline or `until`,
    /// whichever is sooner.
    pub async fn invoke(&self, inv: Invocation, payload: Bytes, until: Option<Instant>) -> Invoked {
        let request = exchange::request(&inv.request, payload);
        let (mut store, deadline, stderr) = self.new_store(inv, until);
        let mut parts = ResponseParts::default();
        let exchange = self.exchange(&mut store, request, &mut parts);
        // The epoch check stops a component that computes past its
        // deadline; one waiting on I/O is stopped here.
        let ran = tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), exchange).await;
        let function = store.data().inv.function.clone();
        let result = match ran {
            Err(_) => Err(past_deadline(&store)),
            Ok(Err(Exchange::Guest(e))) => Err(failed(&e, &store)),
            Ok(Err(Exchange::Response(why))) => Err(CallError::Guest {
                message: format!("function \"{function}\" {why}"),
            }),
            Ok(Ok(body)) => Ok(body),
        };
        log_stderr(&store, stderr);
        // A failed invocation's status and headers do not apply, as for waPC.
        let response = if result.is_ok() {
            parts
        } else {
            ResponseParts::default()
        };
        Invoked {
            result,
            response,
            teardown: Teardown(store),
        }
    }

    /// A store for one invocation, armed with its deadline (returned) and
    /// memory limit, with the pipe its stderr goes to if it may log.
    pub(crate) fn new_store(
        &self,
        inv: Invocation,
        until: Option<Instant>,
    ) -> (Store<ComponentState>, Instant, Option<MemoryOutputPipe>) {
        let stderr = inv
            .grants
            .allows(Capability::Log)
            .then(|| MemoryOutputPipe::new(STDERR_CAP));
        let outbound = Outbound {
            function: inv.function.clone(),
            client: inv
                .grants
                .http
                .client()
                .cloned()
                .filter(|_| inv.grants.allows(Capability::Http)),
            request: inv.request.clone(),
            span: inv.span,
        };
        let state = ComponentState {
            wasi: self.sandbox(&inv, stderr.clone()),
            table: ResourceTable::new(),
            http: WasiHttpCtx::new(),
            outbound,
            limiter: InstanceLimiter::new(self.limits.memory),
            inv,
        };
        let mut store = Store::new(self.engine.wasmtime(), state);
        let deadline = self.limits.apply(&mut store, |s| &mut s.limiter, until);
        (store, deadline, stderr)
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    pub(crate) fn pre(&self) -> &ProxyPre<ComponentState> {
        &self.pre
    }

    /// Runs `handle` in a new instance while reading its response, which
    /// it may write after `handle` has set it and before it returns.
    async fn exchange(
        &self,
        store: &mut Store<ComponentState>,
        request: http::Request<http_body_util::Full<Bytes>>,
        parts: &mut ResponseParts,
    ) -> Result<Vec<u8>, Exchange> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let mut read = std::pin::pin!(exchange::response(rx, self.max_output, parts));
        let (handled, read_early) = {
            let mut handle = std::pin::pin!(handle(&self.pre, &mut *store, request, tx));
            tokio::select! {
                biased;
                handled = &mut handle => (handled, None),
                read = &mut read => match read {
                    // A response that cannot be delivered (too large, bad
                    // headers) ends the invocation: the instance is dropped
                    // mid-call, which is safe, as it is never used again.
                    Err(why) => return Err(Exchange::Response(why)),
                    Ok(body) => (handle.await, Some(body)),
                },
            }
        };
        handled.map_err(Exchange::Guest)?;
        if let Some(body) = read_early {
            return Ok(body);
        }
        // `handle` has returned, so the guest can write no more: drop what
        // it left in its table (an unset response, an unfinished body),
        // which ends the response or its body instead of waiting for the
        // deadline.
        store.data_mut().table = ResourceTable::new();
        read.await.map_err(Exchange::Response)
    }

    /// The component's WASI context: nothing of the host. No environment
    /// variables or arguments, no network but outbound HTTP through the
    /// policy (`wasi:sockets` is linked, every address refused), stderr to
    /// the log with the `log` grant, and `static/` read-only with `files`.
    fn sandbox(&self, inv: &Invocation, stderr: Option<MemoryOutputPipe>) -> WasiCtx {
        let mut b = WasiCtxBuilder::new();
        if let Some(stderr) = stderr {
            b.stderr(stderr);
        }
        if inv.grants.allows(Capability::Files)
            && let Some(dir) = &self.setting.static_dir
            && let Err(e) = b.preopened_dir(&**dir, STATIC_MOUNT, FsPerms::ReadOnly)
        {
            tracing::warn!(function = &*inv.function, dir = %dir.display(), error = %e, "cannot open the static directory for a component");
        }
        b.build()
    }
}

/// Why an exchange ended without a response.
enum Exchange {
    /// The guest trapped, ran out of memory, or could not be instantiated.
    Guest(wasmtime::Error),
    /// Its response could not be read (none, too large, bad headers).
    Response(String),
}

/// What the component wrote on stderr, line by line into the host log.
pub(crate) fn log_stderr(store: &Store<ComponentState>, stderr: Option<MemoryOutputPipe>) {
    let Some(stderr) = stderr else { return };
    let said = stderr.contents();
    let inv = &store.data().inv;
    for line in String::from_utf8_lossy(&said).lines().filter(|l| !l.trim().is_empty()) {
        inv.console_log(&format!("[stderr] {line}"));
    }
}

/// Instantiates the component in `store` and calls its `handle` with
/// `request`, its response to go to `answer`: the one call sequence of
/// both the buffered and the streamed exchange.
pub(crate) async fn handle<B>(
    pre: &ProxyPre<ComponentState>,
    store: &mut Store<ComponentState>,
    request: http::Request<B>,
    answer: tokio::sync::oneshot::Sender<exchange::Outparam>,
) -> wasmtime::Result<()>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<wasmtime_wasi_http::Error>,
{
    let proxy = pre.instantiate_async(&mut *store).await?;
    let req = store.data_mut().http().new_incoming_request(Scheme::Http, request)?;
    let out = store.data_mut().http().new_response_outparam(answer)?;
    proxy
        .wasi_http_incoming_handler()
        .call_handle(&mut *store, req, out)
        .await
}

/// The failure of an invocation stopped at its deadline while it waited,
/// as the epoch check reports one stopped while it computed.
pub(crate) fn past_deadline(store: &Store<ComponentState>) -> CallError {
    failed(&wasmtime::Error::new(atoll_engine::DeadlineExceeded), store)
}

pub(crate) fn failed(e: &wasmtime::Error, store: &Store<ComponentState>) -> CallError {
    CallError::Failed {
        failure: classify_failure(e, &store.data().limiter, |_| None),
        detail: None,
    }
}
