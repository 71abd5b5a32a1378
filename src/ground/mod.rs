//! The ground every other layer stands on, knowing none of them: the one clock, the UID
//! alphabet, logging, secrets and everything signed with them, the names of outcomes, and the
//! exported metrics (by name and label; no edge or admission type).
//!
//! - [`clock`]: the one wall clock.
//! - [`uid`]: the user-id alphabet the login check admits, and the header form a UID travels in.
//! - [`logging`]: `tracing` for both binaries, and throttles for repeated warnings.
//! - [`secret`]: a key, its HMAC keyed once.
//! - [`signing`]: everything the edge signs (sale paths, captcha challenges, headers to origin)
//!   and the pass tokens an external captcha service signs.
//! - [`outcome`]: what became of a request, by name.
//! - [`metrics`]: every exported metric.

pub mod clock;
pub mod logging;
internal!(mod metrics);
internal!(mod outcome);
internal!(mod secret);
pub mod signing;
pub mod uid;

pub use outcome::Outcome;
pub use secret::Secret;
