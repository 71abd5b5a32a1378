//! A winner's forward to an origin that is a pool (`origin.upstream`): each attempt goes to a
//! server of the pool that is up and not tried yet for this forward, with the origin's own
//! timeouts (`origin.connect_timeout`, `origin.timeout`: the contract's, not the pool's). A
//! connect that failed reached nothing, so the next server is tried; an attempt that reached a
//! server is retried only on a stale keep-alive connection (`error_while_proxy`), which may
//! land on another server — safe because every server of the pool is the same order backend
//! (one database), idempotent by reservation id.

use std::sync::Arc;

use pingora::prelude::*;

use super::Ctx;

/// The peer of the next attempt of a forward to pool `index`.
pub(super) fn peer(ctx: &mut Ctx, index: usize) -> Result<Box<HttpPeer>> {
    let live = Arc::clone(&ctx.live);
    let pool = live
        .pools
        .get(index)
        .ok_or_else(|| Error::explain(ErrorType::ConnectNoRoute, "origin pool"))?;
    let server = pool
        .pick(ctx.origin_key(), &ctx.origin_tried)
        .ok_or_else(|| Error::explain(ErrorType::ConnectNoRoute, "no origin server up"))?;
    ctx.origin_tried.push(server);
    let mut peer = pool
        .peer(server)
        .cloned()
        .ok_or_else(|| Error::explain(ErrorType::ConnectNoRoute, "origin pool"))?;
    let single = &live.origin.options;
    peer.options.connection_timeout = single.connection_timeout;
    peer.options.total_connection_timeout = single.total_connection_timeout;
    peer.options.read_timeout = single.read_timeout;
    peer.options.write_timeout = single.write_timeout;
    Ok(Box::new(peer))
}

/// The server in use of a pooled forward, if it is one.
fn current(ctx: &Ctx) -> Option<(&crate::edge::upstream::Pool, usize)> {
    let index = ctx.live.config.origin.upstream?;
    Some((ctx.live.pools.get(index)?, *ctx.origin_tried.last()?))
}

/// A connect of a pooled forward failed: nothing was sent; another server may take it.
pub(super) fn connect_failed(ctx: &Ctx, mut e: Box<Error>) -> Box<Error> {
    let Some((pool, server)) = current(ctx) else {
        return e;
    };
    pool.connect_failed(server);
    pool.answered(server, None);
    e.set_retry(ctx.origin_tried.len() < pool.len());
    e
}

/// A pooled forward's connection is up.
pub(super) fn connected(ctx: &Ctx) {
    if let Some((pool, server)) = current(ctx) {
        pool.connected(server);
    }
}

/// The server of a pooled forward answered `status`.
pub(super) fn answered(ctx: &Ctx, status: u16) {
    if let Some((pool, server)) = current(ctx) {
        pool.answered(server, Some(status));
    }
}
