//! What a test binary logs, captured as JSON lines for tests that assert on
//! the log (a request's line, a secret that must never appear, which node
//! ran a schedule tick).

use std::sync::{Mutex, OnceLock};

/// Installs, once per test binary, a JSON subscriber with `filter` (an
/// `EnvFilter` directive) writing into memory, and returns that memory.
/// The first call's settings hold for the binary: each binary asks the
/// same. `flatten` puts an event's fields at the top level of its object.
pub fn capture_logs(filter: &str, flatten: bool) -> &'static Mutex<Vec<u8>> {
    static LOGS: OnceLock<&'static Mutex<Vec<u8>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf: &'static Mutex<Vec<u8>> = Box::leak(Box::new(Mutex::new(Vec::new())));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .json()
            .flatten_event(flatten)
            .with_writer(move || Writer(buf))
            .try_init();
        buf
    })
}

/// Everything captured so far, as text.
pub fn captured(logs: &Mutex<Vec<u8>>) -> String {
    String::from_utf8_lossy(&logs.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
}

struct Writer(&'static Mutex<Vec<u8>>);

impl std::io::Write for Writer {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
