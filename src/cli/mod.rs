//! What only the `flashgate` command needs, kept out of the library so that the library is the
//! gateway and the order backend and nothing else: `stock` (seed and inspect the Redis store),
//! `summary` (what `check` prints beside `root::warnings`), `probe` (`check --probe-origin`), `storm`
//! (the load generator) and `demo` (a whole sale on one machine). `main.rs` parses the flags
//! and calls into these.

pub mod demo;
pub mod probe;
pub mod stock;
pub mod storm;
pub mod summary;
