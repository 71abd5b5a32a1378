//! Every integration test of flashgate, in one binary (each used to link Pingora on its own):
//! the real `flashgate` and `flashgate-orders` binaries started as child processes on free
//! ports, redis-server processes of the tests' own, the machine's PostgreSQL reached only
//! through proxies the tests start, and the property tests of every parser. One module a
//! subject; the harness they share is `common`.
//!
//! `cargo test --test suite` runs them all; `cargo test --test suite queue::` one subject.

mod common;

mod access_log;
mod cluster_limits;
mod config;
mod dashboards;
mod demo;
mod docs_links;
mod edge_captcha;
mod edge_sale;
mod failover;
mod faults;
mod front_door;
mod h2_hostile;
mod hostile;
mod house;
mod memory_store;
mod orders;
mod origin_contract;
mod packaging;
mod properties;
mod queue;
mod rate_headers;
mod redis_store;
mod reload;
mod replicas;
mod sale_info;
mod scale_out;
mod secrets;
mod storm;
mod stranded;
mod tls;
mod unanswered;
mod upgrade;
