//! Loading a WAGI program once and running it in a fresh instance per
//! request: `_start` with the CGI arguments and environment, the payload on
//! stdin, the response read from stdout.

use crate::check::{LoadError, check, check_memory};
use crate::stdio::Capture;
use crate::{cgi, response};
use atoll_caps::{Invocation, ResponseParts};
use atoll_engine::{CallError, Engine, InstanceLimiter, Limits, ModuleKey, classify_failure};
use atoll_manifest::{Capability, RoutePath};
use bytes::Bytes;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use wasmtime::{Extern, InstancePre, Linker, ModuleExport, Store};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

/// Bump when the preparation of WAGI modules changes, so cached artifacts
/// from an older scheme are not reused.
const VARIANT: &str = "wagi-v1";
/// Where `static/` appears inside the sandbox, with the `files` grant. A
/// program run from the app's directory finds its files at the same
/// relative path (`static/index.html`).
pub const STATIC_MOUNT: &str = "/static";

/// The WAGI ABI for one engine: its linker is built once and shared by
/// every function.
#[derive(Clone)]
pub struct WagiAbi {
    engine: Engine,
    linker: Arc<Linker<WagiState>>,
}

/// What one WAGI instance carries in its `Store`.
pub struct WagiState {
    wasi: WasiP1Ctx,
    limiter: InstanceLimiter,
}

/// Facts about a loaded program, for `atoll inspect` and logs.
#[derive(Debug, Clone)]
pub struct FunctionInfo {
    /// SHA-256 of the module, hex.
    pub sha256: String,
    /// Size of the module in bytes.
    pub size: usize,
    /// Bytes of linear memory the module needs at start.
    pub min_memory: u64,
}

/// What a program sees around the request, the same for every request.
#[derive(Debug, Clone, Default)]
pub struct Setting {
    /// The app's static files on disk, preopened read-only at
    /// [`STATIC_MOUNT`] for invocations granted `files`.
    pub static_dir: Option<Arc<Path>>,
    /// The routes whose pipelines call the function, to find the one a
    /// request matched (`X_MATCHED_ROUTE`, `SCRIPT_NAME`, `PATH_INFO`).
    pub routes: Arc<[RoutePath]>,
}

/// One WAGI program, ready to run in a fresh instance per request. Cheap
/// to clone: the compiled module and its linking are shared.
#[derive(Clone)]
pub struct WagiFunction {
    engine: Engine,
    pre: InstancePre<WagiState>,
    start: ModuleExport,
    limits: Limits,
    max_output: usize,
    setting: Setting,
    /// What was loaded.
    pub info: FunctionInfo,
}

/// The result of one invocation. `teardown` owns the instance: drop it
/// after the response is on its way, not before.
pub struct Invoked {
    /// The body (stdout after the header block), or why there is none.
    pub result: Result<Vec<u8>, CallError>,
    /// Status and headers from the header block.
    pub response: ResponseParts,
    /// The spent instance.
    pub teardown: Teardown,
}

/// An instance waiting to be torn down.
pub struct Teardown(#[allow(dead_code)] Store<WagiState>);

impl WagiAbi {
    /// Links WASI preview 1 and preview 0 once for every WAGI function.
    pub fn new(engine: &Engine) -> Result<WagiAbi, LoadError> {
        let mut linker = Linker::new(engine.wasmtime());
        let link = |l: &mut Linker<WagiState>| -> wasmtime::Result<()> {
            wasmtime_wasi::p1::add_to_linker_async(l, |s: &mut WagiState| &mut s.wasi)?;
            wasmtime_wasi::p0::add_to_linker_async(l, |s: &mut WagiState| &mut s.wasi)
        };
        link(&mut linker).map_err(|e| LoadError(format!("cannot set up the WASI imports: {e:#}")))?;
        Ok(WagiAbi {
            engine: engine.clone(),
            linker: Arc::new(linker),
        })
    }

    /// Compiles (or fetches from the compile cache), checks and
    /// pre-instantiates a program. CPU-bound: call it off the async workers.
    /// There is no pre-initialisation: a CGI program's whole life is one
    /// `_start`, so there is no init to snapshot apart from the request.
    pub fn load(&self, wasm: &[u8], limits: Limits, max_output: usize) -> Result<WagiFunction, LoadError> {
        let key = ModuleKey::new(wasm, VARIANT);
        let module = match self.engine.load_cached(&key) {
            Some(cached) => cached.module,
            None => self
                .engine
                .compile_cached(&key, "plain", wasm)
                .map_err(|e| LoadError(format!("is not a valid WebAssembly module: {e}")))?,
        };
        let min_memory = check(&module, limits.memory)?;
        let pre = self
            .linker
            .instantiate_pre(&module)
            .map_err(|e| LoadError(format!("cannot link: {e:#}")))?;
        let start = module.get_export_index("_start").expect("checked above");
        Ok(WagiFunction {
            engine: self.engine.clone(),
            pre,
            start,
            limits,
            max_output,
            setting: Setting::default(),
            info: FunctionInfo {
                sha256: key.sha256_hex(),
                size: wasm.len(),
                min_memory,
            },
        })
    }
}

impl WagiFunction {
    /// The same program as another function with other limits: several
    /// functions built from one module share its compilation and linking.
    pub fn with_limits(&self, limits: Limits, max_output: usize) -> Result<WagiFunction, LoadError> {
        check_memory(self.info.min_memory, limits.memory)?;
        Ok(WagiFunction {
            limits,
            max_output,
            ..self.clone()
        })
    }

    /// The same function, seeing `setting` around each request.
    pub fn with_setting(mut self, setting: Setting) -> WagiFunction {
        self.setting = setting;
        self
    }

    /// Runs the program in a brand-new instance with `stdin`, under the
    /// function's deadline or `until`, whichever is sooner.
    pub async fn invoke(&self, mut inv: Invocation, stdin: Bytes, until: Option<Instant>) -> Invoked {
        let stdout = Capture::capped(self.max_output);
        let stderr = Capture::tail();
        let wasi = self.sandbox(&inv, stdin, &stdout, &stderr);
        let mut store = Store::new(
            self.engine.wasmtime(),
            WagiState {
                wasi,
                limiter: InstanceLimiter::new(self.limits.memory),
            },
        );
        let deadline = self.limits.apply(&mut store, |s| &mut s.limiter, until);
        // The epoch check stops a program that computes past its deadline;
        // one blocked in a WASI call (a sleep) is stopped here.
        let run = tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), self.run(&mut store)).await;
        let run = run.unwrap_or_else(|_| Err(wasmtime::Error::new(atoll_engine::DeadlineExceeded)));
        let result = match run {
            Err(e) if exit_code(&e) != Some(0) => {
                let failure = classify_failure(&e, &store.data().limiter, exit_code);
                let said = stderr.text();
                let detail = (!said.is_empty()).then(|| format!("it reported: {}", last_lines(&said, 5)));
                Err(CallError::Failed { failure, detail })
            }
            _ => respond(&inv.function, stdout.take(), &mut inv.response),
        };
        for line in stderr.text().lines().filter(|l| !l.trim().is_empty()) {
            inv.console_log(&format!("[stderr] {line}"));
        }
        let response = match result {
            Ok(_) => std::mem::take(&mut inv.response),
            Err(_) => ResponseParts::default(),
        };
        Invoked {
            result,
            response,
            teardown: Teardown(store),
        }
    }

    /// The program's WASI context: CGI arguments and environment, granted
    /// variables, stdin, captured stdout and stderr, and `static/` with the
    /// `files` grant. Nothing of the host: no other files, no host
    /// environment, no network.
    fn sandbox(&self, inv: &Invocation, stdin: Bytes, stdout: &Capture, stderr: &Capture) -> WasiP1Ctx {
        let mut env = cgi::variables(&inv.function, &inv.request, &self.setting.routes, stdin.len());
        env.extend(cgi::granted_variables(&inv.grants));
        let mut b = WasiCtxBuilder::new();
        b.args(&cgi::args(&inv.function, &inv.request))
            .envs(&env)
            .stdin(MemoryInputPipe::new(stdin))
            .stdout(stdout.clone())
            .stderr(stderr.clone());
        if inv.grants.allows(Capability::Files)
            && let Some(dir) = &self.setting.static_dir
            && let Err(e) = b.preopened_dir(&**dir, STATIC_MOUNT, FsPerms::ReadOnly)
        {
            // The program then finds no static/; say why in the log.
            tracing::warn!(function = &*inv.function, dir = %dir.display(), error = %e, "cannot open the static directory for a WAGI program");
        }
        b.build_p1()
    }

    async fn run(&self, store: &mut Store<WagiState>) -> wasmtime::Result<()> {
        let instance = self.pre.instantiate_async(&mut *store).await?;
        let start = instance
            .get_module_export(&mut *store, &self.start)
            .and_then(Extern::into_func)
            .expect("checked at load")
            .typed::<(), ()>(&*store)?;
        start.call_async(&mut *store, ()).await
    }
}

/// Reads the program's stdout as a CGI response: its header block into
/// `parts`, the rest as the body.
fn respond(function: &str, mut out: Vec<u8>, parts: &mut ResponseParts) -> Result<Vec<u8>, CallError> {
    let bad = |why: String| CallError::Guest {
        message: format!("function \"{function}\" {why}"),
    };
    let head = response::parse(&out).map_err(bad)?;
    for (name, value) in head.headers {
        parts
            .append_header(name, value)
            .map_err(|e| bad(format!("set too many headers: {e}")))?;
    }
    parts.status = head.status;
    Ok(out.split_off(head.body_start))
}

fn exit_code(e: &wasmtime::Error) -> Option<i32> {
    e.downcast_ref::<wasmtime_wasi::I32Exit>().map(|x| x.0)
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}
