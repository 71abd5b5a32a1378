//! flashgate: an edge gateway for flash sales (秒杀), built on Cloudflare's Pingora.
//!
//! It stands where nginx stood, in front of the shop's servers, serves the sale page, turns away
//! at the edge everything that cannot win, pre-deducts stock atomically, and forwards only the
//! winners, signed, to the order backend. The parts, and who may know whom:
//!
//! - [`config`]: the YAML file, validated into one canonical [`config::Config`] (with the TLS
//!   certificate and key it names, read and checked).
//! - [`checkout`]: a buy's whole life — admission, captcha claim, reserve, and settling the
//!   unit by the origin contract once the forward is over.
//! - [`admission`]: one small module per check, each a pure function; no HTTP.
//! - [`stock`]: the [`stock::StockStore`] trait and its implementations, and where used
//!   captchas are remembered ([`stock::single_use`]); no HTTP.
//! - [`queue`]: the waiting room of sales with a `queue:` — signed tickets and passes, the
//!   verifiable shuffle draw, an edge's view of a queue; its shared state is in
//!   [`stock::queue`], its routes and ticks in [`edge`].
//! - [`signing`]: everything the edge signs (sale paths, captcha challenges, headers to origin)
//!   and the pass tokens an external captcha service signs.
//! - [`metrics`]: every exported metric.
//! - [`edge`]: the Pingora service (HTTPS with HTTP/2 and HTTP/1.1, or plain HTTP/1.1),
//!   routing and proxy phases; no business rule lives there.
//! - [`clock`]: the one wall clock.
//! - [`uid`]: the user-id alphabet the login check admits, and the header form a UID travels in.
//! - [`orders`]: the order backend `flashgate-orders` (durable orders, ledger consumer,
//!   payment timeout, reconcile).
//!
//! Arrows go one way: `edge → checkout → admission, stock`; `edge, checkout → metrics, config`;
//! `orders → stock, config`.
//!
//! The library is the gateway and the order backend. What only the `flashgate` command needs
//! (the storm load generator, the demo, `stock load|show`, the summary of `check`) lives in the
//! binary, under `src/cli/`.

// No unwrap() outside tests (clippy.toml allows it in #[test] and #[cfg(test)] code): proper
// errors, or expect("why it cannot fail") for startup invariants. Set in each crate root rather
// than in Cargo.toml's [lints], which would reach into the integration tests as well.
#![deny(clippy::unwrap_used)]

pub mod admission;
pub mod checkout;
pub mod clock;
pub mod config;
pub mod edge;
pub mod logging;
pub mod metrics;
pub mod orders;
pub mod queue;
pub mod signing;
pub mod stock;
pub mod uid;
