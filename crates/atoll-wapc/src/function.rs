use crate::check::{LoadError, Shape, check, check_memory};
use crate::imports;
use crate::state::{Phase, WapcState};
use atoll_caps::{Invocation, ResponseParts};
use atoll_engine::{CallError, Engine, Limits, ModuleKey, classify_failure};
use bytes::Bytes;
use std::sync::Arc;
use std::time::Instant;
use wasmtime::{Extern, Instance, InstancePre, Linker, Module, ModuleExport, Store};

/// Bump when the preparation of waPC modules changes, so cached artifacts
/// from an older scheme are not reused.
const VARIANT: &str = "wapc-v1";
/// Cache tags: how the cached module runs its init. `plain` is followed by
/// a newline and the reason the snapshot was not possible.
const TAG_SNAPSHOT: &str = "snapshot";
const TAG_NO_INIT: &str = "no-init";
const TAG_PLAIN: &str = "plain";

/// The waPC ABI for one engine: its linker is built once and shared by every
/// function.
#[derive(Clone)]
pub struct WapcAbi {
    engine: Engine,
    linker: Arc<Linker<WapcState>>,
}

/// How a function's init code runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitMode {
    /// The module exports no init function.
    None,
    /// Init ran once at load and its result is baked into the module.
    Snapshot,
    /// Init runs on every instance (it could not be snapshotted).
    PerInstance { reason: String },
}

/// Facts about a loaded function, for `atoll inspect` and logs.
#[derive(Debug, Clone)]
pub struct FunctionInfo {
    pub sha256: String,
    pub size: usize,
    pub init: InitMode,
    pub shape: Shape,
}

/// One waPC function, ready to run in a fresh instance per invocation.
/// Cheap to clone: the compiled module and its linking are shared.
#[derive(Clone)]
pub struct WapcFunction {
    engine: Engine,
    pre: InstancePre<WapcState>,
    guest_call: ModuleExport,
    memory: ModuleExport,
    /// Init exports to call on each instance (empty when snapshotted).
    per_instance_init: Vec<ModuleExport>,
    limits: Limits,
    max_output: usize,
    pub info: FunctionInfo,
}

/// The result of one invocation. `teardown` owns the instance: drop it
/// after the response is on its way, not before.
pub struct Invoked {
    pub result: Result<Vec<u8>, CallError>,
    pub response: ResponseParts,
    pub teardown: Teardown,
}

/// An instance waiting to be torn down.
pub struct Teardown(#[allow(dead_code)] Store<WapcState>);

impl WapcAbi {
    pub fn new(engine: &Engine) -> Result<WapcAbi, LoadError> {
        let linker = imports::linker(engine.wasmtime())
            .map_err(|e| LoadError(format!("cannot set up the waPC imports: {e:#}")))?;
        Ok(WapcAbi {
            engine: engine.clone(),
            linker: Arc::new(linker),
        })
    }

    /// Compiles (or fetches from the cache), checks and pre-instantiates a
    /// module. `name` only labels log lines.
    pub async fn load(
        &self,
        name: &str,
        wasm: &[u8],
        limits: Limits,
        max_output: usize,
    ) -> Result<WapcFunction, LoadError> {
        let key = ModuleKey::new(wasm, VARIANT);
        let (module, init) = match self.engine.load_cached(&key) {
            Some(cached) => {
                let (kind, reason) = cached.tag.split_once('\n').unwrap_or((&cached.tag, ""));
                let init = match kind {
                    TAG_SNAPSHOT => InitMode::Snapshot,
                    TAG_NO_INIT => InitMode::None,
                    _ => InitMode::PerInstance {
                        reason: reason.to_string(),
                    },
                };
                (cached.module, init)
            }
            None => self.prepare(name, wasm, &key, limits).await?,
        };
        let shape = check(&module, limits.memory)?;
        let init = match init {
            InitMode::PerInstance { .. } if shape.init_funcs.is_empty() => InitMode::None,
            other => other,
        };
        if let InitMode::PerInstance { reason } = &init {
            tracing::info!(function = name, %reason, "init runs on every instance");
        }
        let pre = self
            .linker
            .instantiate_pre(&module)
            .map_err(|e| LoadError(format!("cannot link: {e:#}")))?;
        let export = |n: &str| {
            module
                .get_export_index(n)
                .ok_or_else(|| LoadError(format!("no export \"{n}\"")))
        };
        let per_instance_init = match init {
            InitMode::PerInstance { .. } => shape.init_funcs.iter().map(|n| export(n)).collect::<Result<_, _>>()?,
            _ => Vec::new(),
        };
        Ok(WapcFunction {
            engine: self.engine.clone(),
            guest_call: export("__guest_call")?,
            memory: export("memory")?,
            pre,
            per_instance_init,
            limits,
            max_output,
            info: FunctionInfo {
                sha256: key.sha256_hex(),
                size: wasm.len(),
                init,
                shape,
            },
        })
    }

    /// First load of a module: snapshot its init if it has one and it can
    /// be, then compile and cache the result.
    async fn prepare(
        &self,
        name: &str,
        wasm: &[u8],
        key: &ModuleKey,
        limits: Limits,
    ) -> Result<(Module, InitMode), LoadError> {
        let compile = |bytes: &[u8], tag: &str| {
            self.engine
                .compile_cached(key, tag, bytes)
                .map_err(|e| LoadError(format!("is not a valid WebAssembly module: {e}")))
        };
        let per_instance = |reason: String| -> Result<(Module, InitMode), LoadError> {
            let module = compile(wasm, &format!("{TAG_PLAIN}\n{reason}"))?;
            Ok((module, InitMode::PerInstance { reason }))
        };
        if !self.engine.config().preinitialize {
            return per_instance("pre-initialisation is turned off".into());
        }
        match self.snapshot(name, wasm, limits).await? {
            Snapshot::Done(bytes) => Ok((compile(&bytes, TAG_SNAPSHOT)?, InitMode::Snapshot)),
            Snapshot::NoInit => Ok((compile(wasm, TAG_NO_INIT)?, InitMode::None)),
            Snapshot::Unsupported(reason) => per_instance(reason),
        }
    }

    async fn snapshot(&self, name: &str, wasm: &[u8], limits: Limits) -> Result<Snapshot, LoadError> {
        let inv = Invocation::new(name, "load", Default::default(), Default::default());
        let mut store = Store::new(
            self.engine.wasmtime(),
            WapcState::new(inv, Bytes::new(), Bytes::new(), limits.memory, 0),
        );
        store.data_mut().phase = Phase::Snapshot;
        let mut init_funcs: Option<Vec<&'static str>> = None;
        let mut load_error: Option<LoadError> = None;
        let mut init_started = false;
        let linker = self.linker.clone();
        let result = atoll_engine::snapshot(&mut store, wasm, "wapc_init", async |store, module| {
            let shape = check(module, limits.memory).inspect_err(|e| load_error = Some(e.clone()))?;
            init_funcs = Some(shape.init_funcs.clone());
            if shape.init_funcs.is_empty() {
                wasmtime::bail!("no init function");
            }
            // The deadline covers init only, not compiling the instrumented module.
            store.data_mut().deadline = limits.apply(store, |s| &mut s.limiter, None);
            let instance = linker.instantiate_async(&mut *store, module).await?;
            attach_memory(store, &instance)?;
            init_started = true;
            for f in &shape.init_funcs {
                let init = instance.get_typed_func::<(), ()>(&mut *store, f)?;
                run_init(store, init).await?;
            }
            init_started = false;
            Ok(instance)
        })
        .await;
        if let Some(e) = load_error {
            return Err(e);
        }
        match result {
            Ok(bytes) => Ok(Snapshot::Done(bytes)),
            Err(_) if init_funcs.as_ref().is_some_and(|f| f.is_empty()) => Ok(Snapshot::NoInit),
            Err(_) if store.data().blocked_import.is_some() => Ok(Snapshot::Unsupported(format!(
                "its init calls {}",
                store.data().blocked_import.unwrap_or_default()
            ))),
            Err(e) if init_started => {
                let failure = classify_failure(&e, &store.data().limiter, exit_code);
                Err(LoadError(format!("its init failed: {failure}")))
            }
            Err(e) => Ok(Snapshot::Unsupported(format!("{e:#}"))),
        }
    }
}

enum Snapshot {
    Done(Vec<u8>),
    NoInit,
    Unsupported(String),
}

fn attach_memory(store: &mut Store<WapcState>, instance: &Instance) -> wasmtime::Result<()> {
    let memory = instance.get_memory(&mut *store, "memory");
    store.data_mut().memory = memory;
    Ok(())
}

/// Runs one init export. TinyGo's `_start` ends with `proc_exit(0)`, which
/// is success, as in the reference waPC host.
async fn run_init(store: &mut Store<WapcState>, f: wasmtime::TypedFunc<(), ()>) -> wasmtime::Result<()> {
    match f.call_async(&mut *store, ()).await {
        Err(e) if exit_code(&e) == Some(0) => Ok(()),
        other => other,
    }
}

fn exit_code(e: &wasmtime::Error) -> Option<i32> {
    e.downcast_ref::<wasmtime_wasi::I32Exit>().map(|x| x.0)
}

impl WapcFunction {
    /// The same module as another function with other limits: several
    /// functions built from one module share its compilation and linking.
    pub fn with_limits(&self, limits: Limits, max_output: usize) -> Result<WapcFunction, LoadError> {
        check_memory(&self.info.shape, limits.memory)?;
        Ok(WapcFunction {
            limits,
            max_output,
            ..self.clone()
        })
    }

    /// Runs `op` with `payload` in a brand-new instance.
    pub async fn invoke(&self, inv: Invocation, op: &str, payload: Bytes) -> Invoked {
        self.invoke_until(inv, op, payload, None).await
    }

    /// [`Self::invoke`], with a deadline that may be earlier than the
    /// function's own (a group's, say).
    pub async fn invoke_until(&self, inv: Invocation, op: &str, payload: Bytes, until: Option<Instant>) -> Invoked {
        let state = WapcState::new(
            inv,
            Bytes::copy_from_slice(op.as_bytes()),
            payload,
            self.limits.memory,
            self.max_output,
        );
        let mut store = Store::new(self.engine.wasmtime(), state);
        store.data_mut().deadline = self.limits.apply(&mut store, |s| &mut s.limiter, until);
        store.data_mut().inv.deadline = Some(store.data().deadline);
        // The epoch check stops a guest that computes past its deadline; a
        // guest blocked in a host call (a WASI sleep, say) is stopped here.
        // Wasmtime unwinds the dropped call's fiber, so the store is still
        // safe to tear down.
        let deadline = tokio::time::Instant::from_std(store.data().deadline);
        let result = match tokio::time::timeout_at(deadline, self.run(&mut store)).await {
            Ok(result) => result,
            Err(_) => Err(RunError::Wasm(wasmtime::Error::new(atoll_engine::DeadlineExceeded))),
        };
        let result = result.map_err(|e| self.describe(&store, e));
        self.forward_stdio(&store);
        let response = std::mem::take(&mut store.data_mut().inv.response);
        Invoked {
            result,
            response,
            teardown: Teardown(store),
        }
    }

    async fn run(&self, store: &mut Store<WapcState>) -> Result<Vec<u8>, RunError> {
        let instance = self.pre.instantiate_async(&mut *store).await.map_err(RunError::Wasm)?;
        let memory = match instance.get_module_export(&mut *store, &self.memory) {
            Some(Extern::Memory(m)) => Some(m),
            _ => None,
        };
        store.data_mut().memory = memory;
        if !self.per_instance_init.is_empty() {
            store.data_mut().phase = Phase::Init;
            for export in &self.per_instance_init {
                let f = instance
                    .get_module_export(&mut *store, export)
                    .and_then(Extern::into_func)
                    .expect("checked at load");
                let f = f.typed::<(), ()>(&*store).map_err(RunError::Wasm)?;
                run_init(store, f).await.map_err(RunError::Wasm)?;
            }
            store.data_mut().phase = Phase::Call;
        }
        let guest_call = instance
            .get_module_export(&mut *store, &self.guest_call)
            .and_then(Extern::into_func)
            .expect("checked at load")
            .typed::<(i32, i32), i32>(&*store)
            .map_err(RunError::Wasm)?;
        let (op_len, msg_len) = (store.data().op.len() as i32, store.data().msg.len() as i32);
        let rc = guest_call
            .call_async(&mut *store, (op_len, msg_len))
            .await
            .map_err(RunError::Wasm)?;
        let state = store.data_mut();
        if rc == 1 {
            Ok(state.guest_response.take().unwrap_or_default())
        } else {
            Err(RunError::Guest(state.guest_error.take().unwrap_or_else(|| {
                format!("the function returned {rc} from __guest_call without an error message")
            })))
        }
    }

    fn describe(&self, store: &Store<WapcState>, e: RunError) -> CallError {
        let state = store.data();
        match e {
            RunError::Guest(message) => CallError::Guest { message },
            RunError::Wasm(err) => {
                let failure = classify_failure(&err, &state.limiter, exit_code);
                // What the guest said before it died: an SDK panic hook
                // reports through __guest_error, wasip1 guests print to stderr.
                let said = state
                    .guest_error
                    .clone()
                    .or_else(|| state.stdio.as_ref().map(|(_, e)| e.text()).filter(|t| !t.is_empty()));
                let detail = said.map(|s| format!("it reported: {}", last_lines(&s, 5)));
                CallError::Failed { failure, detail }
            }
        }
    }

    /// Guest stdout/stderr go to the log, like `__console_log`, when granted.
    fn forward_stdio(&self, store: &Store<WapcState>) {
        let state = store.data();
        if let Some((out, err)) = &state.stdio {
            for (stream, tail) in [("stdout", out), ("stderr", err)] {
                let text = tail.text();
                for line in text.lines().filter(|l| !l.is_empty()) {
                    state.inv.console_log(&format!("[{stream}] {line}"));
                }
            }
        }
    }
}

enum RunError {
    Guest(String),
    Wasm(wasmtime::Error),
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}
