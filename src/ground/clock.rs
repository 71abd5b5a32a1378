//! The program's one wall clock. Sale windows, challenge and pass expiries, signature stamps,
//! reservation times and settlement deadlines are all Unix milliseconds read here, so every
//! part of the program compares times on the same scale.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in milliseconds since the Unix epoch (0 if the clock is set before 1970).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
