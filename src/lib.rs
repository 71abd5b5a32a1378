//! flashgate: an edge gateway for flash sales (秒杀), built on Cloudflare's Pingora.
//!
//! It stands where nginx stood, in front of the shop's servers, serves the sale page, turns away
//! at the edge everything that cannot win, pre-deducts stock atomically, and forwards only the
//! winners, signed, to the order backend. The library is the gateway and the order backend
//! `flashgate-orders`; what only the `flashgate` command needs (the storm load generator, the
//! demo, `stock load|show`, the summary of `check`) lives in the binary, under `src/cli/`.
//!
//! # Layout
//!
//! The modules in layers, from the top down. A file imports only from its own module's tree or
//! from a layer below its own; modules that share a layer import neither way; and no files
//! import each other in a circle. `tests/suite/house.rs` reads every `use` and path of the
//! library against this table and fails on either.
//!
//! | layer | modules | what it owns |
//! |---|---|---|
//! | root | [`root`] | the composition root: the stores the configuration names, opened; the gateway assembled; each warning, given once |
//! | edge | [`edge`] | the Pingora services: routing, the proxy phases, the admin listener, reload and upgrade; moves bytes, decides no buy |
//! | checkout | [`checkout`] | a buy's whole life: admission, captcha claim, reserve, settling the unit by the origin contract |
//! | admission, orders | [`admission`], [`orders`] | one small module per check of a buy, each a pure function, no HTTP; the order backend (API, database, ledger consumer, payment timeout, reconcile) |
//! | queue | [`queue`] | the waiting room whole: tickets, passes and their check, the draw, its stores (memory, Redis) and its ticks |
//! | stock | [`stock`] | the `StockStore` trait, the embedded store (journaled) and Redis (Cluster, Sentinel); keys in one file |
//! | config | [`config`] | the YAML files read into one canonical `Config`; knows no store or server type |
//! | ground | [`ground`] | the clock, UIDs, logging, secrets and signing, outcome names, metrics |

// No unwrap() outside tests (clippy.toml allows it in #[test] and #[cfg(test)] code): proper
// errors, or expect("why it cannot fail") for startup invariants. Set in each crate root rather
// than in Cargo.toml's [lints], which would reach into the integration tests as well.
#![deny(clippy::unwrap_used)]

/// A module the binaries do not need: private to the crate, so that the dead-code lint sees
/// what nothing uses, and public only with the `test-util` feature, for the integration tests
/// (`tests/suite`), which enable it.
macro_rules! internal {
    ($(#[$attr:meta])* mod $name:ident) => {
        $(#[$attr])*
        #[cfg(feature = "test-util")]
        pub mod $name;
        $(#[$attr])*
        #[cfg(not(feature = "test-util"))]
        pub(crate) mod $name;
    };
}

pub mod admission;
pub mod checkout;
pub mod config;
pub mod edge;
pub mod ground;
pub mod orders;
pub mod queue;
pub mod root;
pub mod stock;
