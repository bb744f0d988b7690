//! Lines in the host's structured log, tagged with the function and request
//! id. Needs the `log` capability; without it, lines are dropped.

fn write(level: &str, msg: &str) {
    // Logging must never fail a function.
    let _ = crate::host::call("", "log", level, &rmp_serde::to_vec(msg).unwrap_or_default());
}

pub fn trace(msg: impl AsRef<str>) {
    write("trace", msg.as_ref());
}
pub fn debug(msg: impl AsRef<str>) {
    write("debug", msg.as_ref());
}
pub fn info(msg: impl AsRef<str>) {
    write("info", msg.as_ref());
}
pub fn warn(msg: impl AsRef<str>) {
    write("warn", msg.as_ref());
}
pub fn error(msg: impl AsRef<str>) {
    write("error", msg.as_ref());
}
