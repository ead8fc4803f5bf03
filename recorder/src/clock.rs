//! Wall-clock time in microseconds, the one time unit the recorder writes.

use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch (0 on a clock before it).
pub(crate) fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}
