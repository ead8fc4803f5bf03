//! Wall-clock time as Unix milliseconds: the only time representation stored, so SQLite and
//! PostgreSQL hold the same integers and no time-zone conversion happens in the database.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, now.
pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
