//! Crash points for the crash-matrix tests: `TIAOJIE_FAILPOINT=<name>` makes the process abort
//! (like `kill -9`: no unwinding, no flushing, no goodbye on the socket) the first time it
//! reaches that point of the handoff. Unset, a point costs one atomic load.

use std::sync::OnceLock;

/// The variable naming the point to abort at.
pub const VAR: &str = "TIAOJIE_FAILPOINT";

/// Aborts the process if `name` is the configured crash point.
pub fn hit(name: &str) {
    static POINT: OnceLock<Option<String>> = OnceLock::new();
    let point = POINT.get_or_init(|| std::env::var(VAR).ok().filter(|v| !v.is_empty()));
    if point.as_deref() == Some(name) {
        eprintln!("failpoint {name}: aborting");
        std::process::abort();
    }
}
