//! The waPC adapter against real guests: a plain wapc-guest crate, the SDK,
//! AssemblyScript, and hand-written WAT for hostile and edge cases.

use atoll_caps::{Grants, Invocation, RequestInfo};
use atoll_engine::{Engine, EngineConfig, Failure, Limits};
use atoll_manifest::Capability;
use atoll_testkit::{guest, shared_cache_dir, wat};
use atoll_wapc::{CallError, InitMode, WapcAbi, WapcFunction};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn engine_with(preinitialize: bool, cache: Option<std::path::PathBuf>) -> Engine {
    Engine::new(EngineConfig {
        cache_dir: cache,
        max_instances: 64,
        preinitialize,
        ..EngineConfig::default()
    })
    .unwrap()
}

fn engine() -> Engine {
    engine_with(true, Some(shared_cache_dir()))
}

const LIMITS: Limits = Limits {
    timeout: Duration::from_secs(5),
    memory: 64 << 20,
};

async fn load(engine: &Engine, wasm: &[u8], limits: Limits) -> WapcFunction {
    WapcAbi::new(engine)
        .unwrap()
        .load("test", wasm, limits, 16 << 20)
        .await
        .unwrap_or_else(|e| panic!("load failed: {e}"))
}

async fn load_err(wasm: &[u8]) -> String {
    match WapcAbi::new(&engine())
        .unwrap()
        .load("test", wasm, LIMITS, 16 << 20)
        .await
    {
        Ok(_) => panic!("expected the load to fail"),
        Err(e) => e.to_string(),
    }
}

fn inv_with(caps: &[Capability]) -> Invocation {
    let grants = Grants::with_capabilities(caps.iter().copied());
    let mut headers = http::HeaderMap::new();
    headers.insert("x-agent", http::HeaderValue::from_static("tester"));
    let request = RequestInfo {
        method: http::Method::GET,
        uri: http::Uri::from_static("/x"),
        headers,
        ..RequestInfo::default()
    };
    Invocation::new("test", "req-1", Arc::new(grants), Arc::new(request))
}

fn inv() -> Invocation {
    inv_with(&[])
}

async fn call(f: &WapcFunction, op: &str, payload: &str) -> Result<Vec<u8>, CallError> {
    f.invoke(inv(), op, payload.as_bytes().to_vec().into()).await.result
}

async fn call_text(f: &WapcFunction, op: &str, payload: &str) -> String {
    String::from_utf8(call(f, op, payload).await.unwrap()).unwrap()
}

#[tokio::test]
async fn plain_wapc_guest_echoes_with_and_without_preinitialisation() {
    for preinit in [true, false] {
        let f = load(&engine_with(preinit, None), &guest("wapc-plain"), LIMITS).await;
        let expected = if preinit {
            InitMode::Snapshot
        } else {
            InitMode::PerInstance {
                reason: "pre-initialisation is turned off".into(),
            }
        };
        assert_eq!(f.info.init, expected);
        assert_eq!(call_text(&f, "ping", "hello").await, "hello");
        assert_eq!(call_text(&f, "upper", "hello").await, "HELLO");
        assert_eq!(call_text(&f, "ping", "").await, "");
        let big = "y".repeat(1 << 20);
        assert_eq!(call_text(&f, "ping", &big).await, big);
    }
}

#[tokio::test]
async fn an_unknown_operation_is_the_guests_own_error() {
    let f = load(&engine(), &guest("wapc-plain"), LIMITS).await;
    match call(&f, "nope", "").await {
        Err(CallError::Guest { message }) => assert!(message.contains("nope"), "{message}"),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn guest_errors_carry_the_guests_message() {
    let f = load(&engine(), &guest("wapc-plain"), LIMITS).await;
    match call(&f, "fail", "").await {
        Err(CallError::Guest { message }) => assert_eq!(message, "this function fails on purpose"),
        other => panic!("unexpected {other:?}"),
    }
}

/// Each invocation gets a brand-new instance: a counter in a global and in
/// memory starts from zero every time.
#[tokio::test]
async fn every_invocation_sees_a_fresh_instance() {
    let counter = wat(r#"
        (module
          (import "wapc" "__guest_response" (func $resp (param i32 i32)))
          (memory (export "memory") 1)
          (global $calls (mut i32) (i32.const 0))
          (func (export "__guest_call") (param i32 i32) (result i32)
            (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
            (i32.store8 (i32.const 100) (i32.add (i32.load8_u (i32.const 100)) (i32.const 1)))
            (i32.store8 (i32.const 101) (i32.add (global.get $calls) (i32.const 48)))
            (i32.store8 (i32.const 100) (i32.add (i32.load8_u (i32.const 100)) (i32.const 48)))
            (call $resp (i32.const 100) (i32.const 2))
            (i32.const 1)))
    "#);
    let f = load(&engine(), &counter, LIMITS).await;
    for _ in 0..5 {
        assert_eq!(call_text(&f, "x", "").await, "11");
    }
}

/// A zero-length buffer is legal at any pointer, even far outside memory.
#[tokio::test]
async fn zero_length_buffers_at_any_pointer_are_legal() {
    let edge = wat(r#"
        (module
          (import "wapc" "__guest_request" (func $req (param i32 i32)))
          (import "wapc" "__guest_response" (func $resp (param i32 i32)))
          (import "wapc" "__host_call" (func $call (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
          (import "wapc" "__host_error" (func $herr (param i32)))
          (import "wapc" "__console_log" (func $log (param i32 i32)))
          (memory (export "memory") 1)
          (func (export "__guest_call") (param i32 i32) (result i32)
            (call $req (i32.const -16) (i32.const -1))
            (call $log (i32.const -5) (i32.const 0))
            ;; host call with every buffer empty: namespace "" is unknown, so 0
            (drop (call $call (i32.const -1) (i32.const 0) (i32.const -1) (i32.const 0)
                              (i32.const -1) (i32.const 0) (i32.const -1) (i32.const 0)))
            (call $resp (i32.const -1) (i32.const 0))
            (i32.const 1)))
    "#);
    let f = load(&engine(), &edge, LIMITS).await;
    assert_eq!(call(&f, "", "").await.unwrap(), b"");
}

#[tokio::test]
async fn buffers_outside_memory_fail_the_call_with_a_message() {
    let bad = wat(r#"
        (module
          (import "wapc" "__guest_response" (func $resp (param i32 i32)))
          (memory (export "memory") 1)
          (func (export "__guest_call") (param i32 i32) (result i32)
            (call $resp (i32.const 65000) (i32.const 1000))
            (i32.const 1)))
    "#);
    let f = load(&engine(), &bad, LIMITS).await;
    let err = call(&f, "x", "").await.unwrap_err().to_string();
    assert!(
        err.contains("__guest_response") && err.contains("outside its memory"),
        "{err}"
    );
}

#[tokio::test]
async fn a_panicking_guest_traps_its_own_call_only() {
    let f = load(&engine(), &guest("wapc-plain"), LIMITS).await;
    match call(&f, "panic", "").await {
        Err(CallError::Failed {
            failure: Failure::Trap { message },
            ..
        }) => {
            assert!(message.contains("unreachable"), "{message}")
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(call_text(&f, "ping", "still here").await, "still here");
}

#[tokio::test]
async fn sdk_panics_report_their_message() {
    let f = load(&engine(), &guest("sdk-fixture"), LIMITS).await;
    let err = call(&f, "panic", "").await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("trapped"), "{text}");
    assert!(text.contains("the sdk fixture panics on purpose"), "{text}");
}

#[tokio::test]
async fn a_looping_guest_hits_its_deadline() {
    let limits = Limits {
        timeout: Duration::from_millis(200),
        ..LIMITS
    };
    let f = load(&engine(), &guest("wapc-plain"), limits).await;
    let start = Instant::now();
    let err = call(&f, "spin", "").await.unwrap_err();
    assert_eq!(
        err,
        CallError::Failed {
            failure: Failure::Timeout,
            detail: None
        }
    );
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

/// On a single-threaded runtime, a guest that loops forever must still let
/// other invocations run: it yields on every epoch tick.
#[tokio::test(flavor = "current_thread")]
async fn a_looping_guest_does_not_starve_others() {
    let engine = engine();
    let spin = load(
        &engine,
        &guest("wapc-plain"),
        Limits {
            timeout: Duration::from_secs(3),
            ..LIMITS
        },
    )
    .await;
    let echo = load(&engine, &guest("wapc-plain"), LIMITS).await;
    let spinning = tokio::spawn(async move { spin.invoke(inv(), "spin", Default::default()).await.result });
    tokio::task::yield_now().await;
    for i in 0..50 {
        let out = call_text(&echo, "ping", &i.to_string()).await;
        assert_eq!(out, i.to_string());
    }
    assert!(
        !spinning.is_finished(),
        "the others ran while the spinning guest still ran"
    );
    assert!(matches!(
        spinning.await.unwrap(),
        Err(CallError::Failed {
            failure: Failure::Timeout,
            ..
        })
    ));
}

#[tokio::test]
async fn a_memory_hungry_guest_is_stopped_at_its_limit() {
    let limits = Limits {
        memory: 16 << 20,
        ..LIMITS
    };
    let f = load(&engine(), &guest("wapc-plain"), limits).await;
    assert_eq!(call_text(&f, "grow", "4").await, (4 << 20 | 2).to_string());
    match call(&f, "grow", "64").await {
        Err(CallError::Failed {
            failure: Failure::OutOfMemory { limit },
            ..
        }) => assert_eq!(limit, 16 << 20),
        other => panic!("unexpected {other:?}"),
    }
    let text = call(&f, "grow", "64").await.unwrap_err().to_string();
    assert!(text.contains("memory limit of 16MiB"), "{text}");
}

#[tokio::test]
async fn output_beyond_the_limit_is_refused() {
    let abi = WapcAbi::new(&engine()).unwrap();
    let f = abi.load("big", &guest("wapc-plain"), LIMITS, 1 << 20).await.unwrap();
    assert_eq!(call(&f, "big", "1000").await.unwrap().len(), 1000);
    let err = call(&f, "big", &(2 << 20).to_string()).await.unwrap_err().to_string();
    assert!(err.contains("exceeds the limit of 1048576 bytes"), "{err}");
}

#[tokio::test]
async fn capabilities_not_granted_are_refused_with_the_namespace_named() {
    let f = load(&engine(), &guest("wapc-plain"), LIMITS).await;
    let out = call_text(&f, "host", "log:info:hello").await;
    assert!(out.starts_with("ERR "), "{out}");
    assert!(
        out.contains("capability \"log\" is not granted to function \"test\""),
        "{out}"
    );

    let out = call_text(&f, "host", "teleport:go:").await;
    assert!(out.contains("unknown namespace \"teleport\""), "{out}");

    let granted = f
        .invoke(
            inv_with(&[Capability::Log]),
            "host",
            "log:info:hello".as_bytes().to_vec().into(),
        )
        .await;
    assert_eq!(granted.result.unwrap(), b"");
}

#[tokio::test]
async fn request_and_response_namespaces_need_no_grant() {
    let f = load(&engine(), &guest("wapc-plain"), LIMITS).await;
    let out = call(&f, "host", "request:header:x-agent").await.unwrap();
    assert_eq!(
        rmp_serde::from_slice::<Option<String>>(&out).unwrap().as_deref(),
        Some("tester")
    );

    let mut status = b"response:set_status:".to_vec();
    status.extend(rmp_serde::to_vec(&418u16).unwrap());
    let invoked = f.invoke(inv(), "host", status.into()).await;
    assert_eq!(invoked.result.unwrap(), b"");
    assert_eq!(invoked.response.status, Some(418));
}

#[tokio::test]
async fn modules_that_are_not_wapc_guests_fail_to_load_with_a_reason() {
    let no_call = wat(r#"(module (memory (export "memory") 1) (func (export "run")))"#);
    let err = load_err(&no_call).await;
    assert!(
        err.contains("does not export \"__guest_call\"") && err.contains("run"),
        "{err}"
    );

    let env_import = wat(r#"
        (module (import "env" "abort" (func))
          (memory (export "memory") 1)
          (func (export "__guest_call") (param i32 i32) (result i32) (i32.const 1)))"#);
    let err = load_err(&env_import).await;
    assert!(err.contains("\"env.abort\", which Atoll does not provide"), "{err}");

    let wrong_sig = wat(r#"
        (module (import "wapc" "__console_log" (func (param i64)))
          (memory (export "memory") 1)
          (func (export "__guest_call") (param i32 i32) (result i32) (i32.const 1)))"#);
    let err = load_err(&wrong_sig).await;
    assert!(err.contains("__console_log") && err.contains("wrong type"), "{err}");

    let no_memory = wat(r#"(module (func (export "__guest_call") (param i32 i32) (result i32) (i32.const 1)))"#);
    assert!(load_err(&no_memory).await.contains("\"memory\""));

    let huge = wat(r#"
        (module (memory (export "memory") 2000)
          (func (export "__guest_call") (param i32 i32) (result i32) (i32.const 1)))"#);
    let err = load_err(&huge).await;
    assert!(err.contains("125MiB") && err.contains("64MiB"), "{err}");

    assert!(
        load_err(b"not wasm at all")
            .await
            .contains("not a valid WebAssembly module")
    );
}

/// An init that calls the host cannot be snapshotted: it runs per instance
/// instead, and still works.
#[tokio::test]
async fn init_that_calls_the_host_runs_per_instance() {
    let logs_in_init = wat(r#"
        (module
          (import "wapc" "__console_log" (func $log (param i32 i32)))
          (import "wapc" "__guest_response" (func $resp (param i32 i32)))
          (memory (export "memory") 1)
          (data (i32.const 0) "ready")
          (global $ready (mut i32) (i32.const 0))
          (func (export "wapc_init")
            (call $log (i32.const 0) (i32.const 5))
            (global.set $ready (i32.const 1)))
          (func (export "__guest_call") (param i32 i32) (result i32)
            (call $resp (i32.const 0) (global.get $ready))
            (i32.const 1)))
    "#);
    let f = load(&engine_with(true, None), &logs_in_init, LIMITS).await;
    match &f.info.init {
        InitMode::PerInstance { reason } => assert!(reason.contains("__console_log"), "{reason}"),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(call_text(&f, "x", "").await, "r");
}

#[tokio::test]
async fn init_that_traps_fails_the_load() {
    let traps = wat(r#"
        (module (memory (export "memory") 1)
          (func (export "wapc_init") unreachable)
          (func (export "__guest_call") (param i32 i32) (result i32) (i32.const 1)))"#);
    let err = load_err(&traps).await;
    assert!(err.contains("its init failed") && err.contains("unreachable"), "{err}");
}

/// TinyGo guests end `_start` with `proc_exit(0)`: that is success.
#[tokio::test]
async fn start_that_exits_zero_is_success() {
    let tinygo_like = wat(r#"
        (module
          (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
          (import "wapc" "__guest_response" (func $resp (param i32 i32)))
          (memory (export "memory") 1)
          (data (i32.const 0) "go")
          (func (export "_start") (call $exit (i32.const 0)))
          (func (export "__guest_call") (param i32 i32) (result i32)
            (call $resp (i32.const 0) (i32.const 2))
            (i32.const 1)))
    "#);
    for preinit in [true, false] {
        let f = load(&engine_with(preinit, None), &tinygo_like, LIMITS).await;
        assert_eq!(call_text(&f, "x", "").await, "go");
    }
}

#[tokio::test]
async fn wasip1_stdout_and_stderr_are_captured_not_fatal() {
    let f = load(&engine(), &guest("sdk-fixture"), LIMITS).await;
    assert_eq!(call_text(&f, "print", "").await, "printed");
}

#[tokio::test]
async fn an_unmodified_assemblyscript_guest_runs() {
    let f = load(&engine(), &guest("as-echo"), LIMITS).await;
    assert_eq!(call_text(&f, "ping", "from AS").await, "from AS");
    assert_eq!(call_text(&f, "shout", "hey").await, "HEY!");
    let agent = call(&f, "agent", "").await.unwrap();
    assert_eq!(
        rmp_serde::from_slice::<Option<String>>(&agent).unwrap().as_deref(),
        Some("tester")
    );
    match call(&f, "fail", "").await {
        Err(CallError::Guest { message }) => {
            assert!(message.contains("assemblyscript says no"), "{message}")
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn many_concurrent_invocations_all_succeed() {
    let f = Arc::new(load(&engine(), &guest("wapc-plain"), LIMITS).await);
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let f = f.clone();
            tokio::spawn(async move { (i, call_text(&f, "ping", &format!("n{i}")).await) })
        })
        .collect();
    for t in tasks {
        let (i, out) = t.await.unwrap();
        assert_eq!(out, format!("n{i}"));
    }
}

/// A second engine on the same cache directory reuses the compiled (and
/// snapshotted) module instead of compiling again.
#[tokio::test]
async fn the_compile_cache_survives_a_restart() {
    let dir = std::env::temp_dir().join(format!("atoll-cache-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let wasm = guest("wapc-plain");
    let first = load(&engine_with(true, Some(dir.clone())), &wasm, LIMITS).await;
    assert_eq!(first.info.init, InitMode::Snapshot);
    let entries = std::fs::read_dir(&dir).unwrap().count();
    assert_eq!(entries, 2, "one artifact and its tag");

    let restarted = engine_with(true, Some(dir.clone()));
    let key = atoll_engine::ModuleKey::new(&wasm, "wapc-v1");
    let cached = restarted
        .load_cached(&key)
        .expect("the restarted engine finds the artifact");
    assert_eq!(cached.tag, "snapshot");
    let again = load(&restarted, &wasm, LIMITS).await;
    assert_eq!(again.info.init, InitMode::Snapshot);
    assert_eq!(call_text(&again, "ping", "cached").await, "cached");

    // A corrupt artifact is discarded and rebuilt, never trusted.
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "cwasm") {
            std::fs::write(&path, b"garbage").unwrap();
        }
    }
    let rebuilt = load(&engine_with(true, Some(dir.clone())), &wasm, LIMITS).await;
    assert_eq!(call_text(&rebuilt, "ping", "rebuilt").await, "rebuilt");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A guest blocked in a host call (here a WASI sleep) is stopped at its
/// deadline too, not only one that computes.
#[tokio::test]
async fn a_guest_waiting_in_a_host_call_hits_its_deadline() {
    let limits = Limits {
        timeout: Duration::from_millis(200),
        ..LIMITS
    };
    let f = load(&engine(), &guest("caps-fixture"), limits).await;
    let started = Instant::now();
    let err = call(&f, "sleep", "5000").await.unwrap_err();
    assert!(
        matches!(
            err,
            CallError::Failed {
                failure: Failure::Timeout,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    assert_eq!(
        call_text(&f, "sleep", "1").await,
        "slept 1",
        "the function still works afterwards"
    );
}

#[tokio::test]
async fn a_guest_importing_wasi_preview_0_loads_and_runs() {
    // Older TinyGo releases import `wasi_unstable` instead of
    // `wasi_snapshot_preview1`. This guest draws 16 random bytes, writes a
    // line to stdout and to stderr, and answers with the errnos, the bytes
    // written and the random bytes; with a non-empty payload it then traps,
    // so its stderr shows up in the error as preview 1's does.
    let preview0 = wat(r#"
        (module
          (import "wasi_unstable" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
          (import "wasi_unstable" "random_get" (func $random_get (param i32 i32) (result i32)))
          (import "wapc" "__guest_response" (func $respond (param i32 i32)))
          (memory (export "memory") 1)
          (data (i32.const 400) "said through preview 0\n")
          (func (export "__guest_call") (param $op_len i32) (param $msg_len i32) (result i32)
            (i32.store (i32.const 200) (i32.const 400))
            (i32.store (i32.const 204) (i32.const 23))
            (i32.store8 (i32.const 0) (call $random_get (i32.const 4) (i32.const 16)))
            (i32.store8 (i32.const 1) (call $fd_write (i32.const 1) (i32.const 200) (i32.const 1) (i32.const 300)))
            (i32.store8 (i32.const 2) (call $fd_write (i32.const 2) (i32.const 200) (i32.const 1) (i32.const 300)))
            (i32.store8 (i32.const 3) (i32.load (i32.const 300)))
            (if (local.get $msg_len) (then unreachable))
            (call $respond (i32.const 0) (i32.const 20))
            (i32.const 1)))"#);
    let f = load(&engine(), &preview0, LIMITS).await;
    assert!(f.info.shape.imports_wasi);
    let first = f
        .invoke(inv_with(&[Capability::Log]), "run", Vec::new().into())
        .await
        .result
        .unwrap();
    assert_eq!(&first[..4], &[0, 0, 0, 23], "errnos and bytes written");
    let second = call(&f, "run", "").await.unwrap();
    assert_ne!(first[4..], second[4..], "each instance draws its own random bytes");
    assert_ne!(first[4..], [0; 16]);

    match call(&f, "run", "trap").await {
        Err(CallError::Failed {
            failure: Failure::Trap { .. },
            detail: Some(said),
        }) => assert!(said.contains("said through preview 0"), "{said}"),
        other => panic!("expected a trap with the guest's stderr, got {other:?}"),
    }
}
