//! The nine `wapc` imports, as `wapc-guest` 1.x and the reference host
//! (`wasmtime-provider`) define them, plus WASI preview 1 and, for guests
//! built by older toolchains (TinyGo before 0.23), preview 0
//! (`wasi_unstable`), both over one sandboxed context.
//!
//! Conventions every import follows:
//! - lengths and pointers are `i32` (wasm32); a zero-length buffer is legal
//!   at any pointer and is never dereferenced;
//! - a buffer outside the guest's memory traps the guest with a message that
//!   names the import, never the host;
//! - a failed host call is not a trap: `__host_call` returns 0 and the
//!   message waits in `__host_error`.

use crate::state::{Phase, WapcState};
use atoll_engine::DeadlineExceeded;
use wasmtime::{Caller, Linker, Memory, bail};

pub(crate) const MODULE: &str = "wapc";

/// Names and signatures `(params, results)` of every waPC import; a guest may
/// import any subset.
pub(crate) const IMPORTS: &[(&str, usize, usize)] = &[
    ("__guest_request", 2, 0),
    ("__guest_response", 2, 0),
    ("__guest_error", 2, 0),
    ("__host_call", 8, 1),
    ("__host_response_len", 0, 1),
    ("__host_response", 1, 0),
    ("__host_error_len", 0, 1),
    ("__host_error", 1, 0),
    ("__console_log", 2, 0),
];

/// Guest error messages longer than this are cut.
const MAX_ERROR: usize = 64 * 1024;

pub(crate) fn linker(engine: &wasmtime::Engine) -> wasmtime::Result<Linker<WapcState>> {
    let mut l = Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_async(&mut l, WapcState::wasi)?;
    wasmtime_wasi::p0::add_to_linker_async(&mut l, WapcState::wasi)?;

    l.func_wrap(
        MODULE,
        "__guest_request",
        |mut c: Caller<'_, WapcState>, op_ptr: i32, ptr: i32| {
            guard(&mut c, "__guest_request")?;
            let mem = memory(&c)?;
            let (op, msg) = (c.data().op.clone(), c.data().msg.clone());
            write(&mut c, mem, ptr, &msg, "__guest_request (message)")?;
            write(&mut c, mem, op_ptr, &op, "__guest_request (operation)")
        },
    )?;

    l.func_wrap(
        MODULE,
        "__guest_response",
        |mut c: Caller<'_, WapcState>, ptr: i32, len: i32| {
            guard(&mut c, "__guest_response")?;
            let max = c.data().max_output;
            if len as u32 as usize > max {
                bail!(
                    "the function's output of {} bytes exceeds the limit of {max} bytes ({} MiB)",
                    len as u32,
                    max >> 20
                );
            }
            let bytes = read(&c, ptr, len, "__guest_response")?;
            c.data_mut().guest_response = Some(bytes);
            Ok(())
        },
    )?;

    l.func_wrap(
        MODULE,
        "__guest_error",
        |mut c: Caller<'_, WapcState>, ptr: i32, len: i32| {
            guard(&mut c, "__guest_error")?;
            let len = (len as u32).min(MAX_ERROR as u32) as i32;
            let bytes = read(&c, ptr, len, "__guest_error")?;
            c.data_mut().guest_error = Some(String::from_utf8_lossy(&bytes).into_owned());
            Ok(())
        },
    )?;

    l.func_wrap_async(
        MODULE,
        "__host_call",
        |mut c: Caller<'_, WapcState>,
         (bd_ptr, bd_len, ns_ptr, ns_len, op_ptr, op_len, ptr, len): (i32, i32, i32, i32, i32, i32, i32, i32)| {
            Box::new(async move {
                guard(&mut c, "__host_call")?;
                let binding = read(&c, bd_ptr, bd_len, "__host_call (binding)")?;
                let namespace = read(&c, ns_ptr, ns_len, "__host_call (namespace)")?;
                let operation = read(&c, op_ptr, op_len, "__host_call (operation)")?;
                let payload = read(&c, ptr, len, "__host_call (payload)")?;
                let state = c.data_mut();
                state.host_response = None;
                state.host_error = None;
                let (Ok(b), Ok(n), Ok(o)) = (
                    std::str::from_utf8(&binding),
                    std::str::from_utf8(&namespace),
                    std::str::from_utf8(&operation),
                ) else {
                    state.host_error = Some("binding, namespace and operation must be UTF-8".into());
                    return Ok(0);
                };
                let deadline = tokio::time::Instant::from_std(state.deadline);
                let result = tokio::time::timeout_at(deadline, state.inv.host_call(b, n, o, &payload)).await;
                match result {
                    Err(_) => Err(wasmtime::Error::new(DeadlineExceeded)),
                    Ok(Ok(bytes)) => {
                        state.host_response = Some(bytes);
                        Ok(1)
                    }
                    Ok(Err(e)) => {
                        state.host_error = Some(e.to_string());
                        Ok(0)
                    }
                }
            })
        },
    )?;

    l.func_wrap(MODULE, "__host_response_len", |mut c: Caller<'_, WapcState>| {
        guard(&mut c, "__host_response_len")?;
        Ok(c.data().host_response.as_ref().map_or(0, |r| r.len() as i32))
    })?;

    l.func_wrap(MODULE, "__host_response", |mut c: Caller<'_, WapcState>, ptr: i32| {
        guard(&mut c, "__host_response")?;
        let mem = memory(&c)?;
        let bytes = c.data_mut().host_response.take().unwrap_or_default();
        let result = write(&mut c, mem, ptr, &bytes, "__host_response");
        c.data_mut().host_response = Some(bytes);
        result
    })?;

    l.func_wrap(MODULE, "__host_error_len", |mut c: Caller<'_, WapcState>| {
        guard(&mut c, "__host_error_len")?;
        Ok(c.data().host_error.as_ref().map_or(0, |e| e.len() as i32))
    })?;

    l.func_wrap(MODULE, "__host_error", |mut c: Caller<'_, WapcState>, ptr: i32| {
        guard(&mut c, "__host_error")?;
        let mem = memory(&c)?;
        let text = c.data_mut().host_error.take().unwrap_or_default();
        let result = write(&mut c, mem, ptr, text.as_bytes(), "__host_error");
        c.data_mut().host_error = Some(text);
        result
    })?;

    l.func_wrap(
        MODULE,
        "__console_log",
        |mut c: Caller<'_, WapcState>, ptr: i32, len: i32| {
            guard(&mut c, "__console_log")?;
            let bytes = read(&c, ptr, len, "__console_log")?;
            c.data().inv.console_log(&String::from_utf8_lossy(&bytes));
            Ok(())
        },
    )?;

    Ok(l)
}

/// While snapshotting, any waPC import aborts the attempt: its effect would
/// otherwise be frozen into every future instance.
fn guard(c: &mut Caller<'_, WapcState>, import: &'static str) -> wasmtime::Result<()> {
    if c.data().phase == Phase::Snapshot {
        c.data_mut().blocked_import = Some(import);
        bail!("{import} is not available while pre-initialising");
    }
    Ok(())
}

fn memory(c: &Caller<'_, WapcState>) -> wasmtime::Result<Memory> {
    match c.data().memory {
        Some(m) => Ok(m),
        None => bail!("the guest exports no memory named \"memory\""),
    }
}

fn read(c: &Caller<'_, WapcState>, ptr: i32, len: i32, what: &str) -> wasmtime::Result<Vec<u8>> {
    if len == 0 {
        return Ok(Vec::new());
    }
    let mem = memory(c)?;
    let (start, len) = (ptr as u32 as usize, len as u32 as usize);
    match mem.data(c).get(start..start.saturating_add(len)) {
        Some(bytes) => Ok(bytes.to_vec()),
        None => {
            bail!("{what}: the guest passed a buffer ({len} bytes at {start}) outside its memory")
        }
    }
}

fn write(c: &mut Caller<'_, WapcState>, mem: Memory, ptr: i32, bytes: &[u8], what: &str) -> wasmtime::Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    let start = ptr as u32 as usize;
    match mem.data_mut(c).get_mut(start..start.saturating_add(bytes.len())) {
        Some(dst) => {
            dst.copy_from_slice(bytes);
            Ok(())
        }
        None => bail!(
            "{what}: the guest passed a buffer ({} bytes at {start}) outside its memory",
            bytes.len()
        ),
    }
}
