//! Property tests of every parser that reads what the public sends or what the configuration
//! file says: the login token (Authorization and cookie, the JWT), the proof-of-work challenge
//! and the external captcha's pass, the sale's secret buy path, routing, `X-Forwarded-For`, the
//! UID alphabet and its header form, the static page's paths and `If-None-Match`, the
//! configuration file (the `${ENV}` values and id ranges in it, the products and blocklist
//! files it names), the signed headers the order backend reads, and the waiting room's
//! tickets, passes and draw. One module a parser; the strategies they share are in
//! `strategies`.
//!
//! Each property says what holds for *any* input — no panic, nothing passes that was not made
//! by the holder of the right key, what was made round-trips — with case counts chosen so the
//! whole module runs in seconds in a debug build (`cargo test --test suite properties::`).

mod captcha;
mod client_ip;
mod config;
mod login;
mod orders;
mod queue;
mod routes;
mod sale_path;
mod static_files;
mod strategies;
mod uid;
