//! A plain waPC guest, as anyone would write it with `wapc-guest` alone.
//! Built for `wasm32-unknown-unknown`.

use wapc_guest::{CallResult, console_log, host_call, register_function};

#[unsafe(no_mangle)]
pub extern "C" fn wapc_init() {
    register_function("ping", echo);
    register_function("handle", echo);
    register_function("fail", fail);
    register_function("host", host);
    register_function("log", log);
    register_function("big", big);
    register_function("grow", grow);
    register_function("panic", panic);
    register_function("spin", spin);
    register_function("upper", upper);
    register_function("hello", hello);
}

fn echo(msg: &[u8]) -> CallResult {
    Ok(msg.to_vec())
}

fn hello(_: &[u8]) -> CallResult {
    Ok(b"Hello, world!".to_vec())
}

fn upper(msg: &[u8]) -> CallResult {
    Ok(msg.to_ascii_uppercase())
}

fn fail(_: &[u8]) -> CallResult {
    Err("this function fails on purpose".into())
}

/// Payload `namespace:operation:payload` (the payload may be any bytes):
/// calls the host and returns its answer, or `ERR <message>` when the host
/// refuses.
fn host(msg: &[u8]) -> CallResult {
    let mut parts = msg.splitn(3, |&b| b == b':');
    let ns = std::str::from_utf8(parts.next().unwrap_or_default())?;
    let op = std::str::from_utf8(parts.next().unwrap_or_default())?;
    let payload = parts.next().unwrap_or_default();
    match host_call("", ns, op, payload) {
        Ok(bytes) => Ok(bytes),
        Err(e) => Ok(format!("ERR {e}").into_bytes()),
    }
}

fn log(msg: &[u8]) -> CallResult {
    console_log(std::str::from_utf8(msg)?);
    Ok(b"logged".to_vec())
}

/// Returns as many bytes as the payload says (decimal).
fn big(msg: &[u8]) -> CallResult {
    let n: usize = std::str::from_utf8(msg)?.trim().parse()?;
    Ok(vec![b'x'; n])
}

/// Allocates and touches the payload's number of MiB.
fn grow(msg: &[u8]) -> CallResult {
    let mib: usize = std::str::from_utf8(msg)?.trim().parse()?;
    let mut v = vec![1u8; mib << 20];
    v[0] = 2;
    Ok(format!("{}", v.len() + v[0] as usize).into_bytes())
}

fn panic(_: &[u8]) -> CallResult {
    panic!("this guest panics on purpose")
}

fn spin(_: &[u8]) -> CallResult {
    let mut i: u64 = 0;
    loop {
        i = std::hint::black_box(i.wrapping_add(1));
    }
}
