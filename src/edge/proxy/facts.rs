//! What the proxy knows of a request besides its route: the client's address (its peer, or
//! `X-Forwarded-For` from a trusted proxy) and, once it is answered, its access-log line.

use std::net::{IpAddr, Ipv4Addr};

use pingora::proxy::Session;

use super::{Ctx, Edge};
use crate::admission::client_ip;
use crate::edge::access_log::Line;
use crate::edge::Live;
use crate::ground::clock::now_ms;
use crate::ground::metrics::Route;

impl Edge {
    /// The client of `session`: its TCP peer, or what `X-Forwarded-For` says when the peer is
    /// a trusted proxy (`admission::client_ip`).
    pub(super) fn client_ip(session: &Session, live: &Live) -> IpAddr {
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip())
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        client_ip::resolve(
            peer,
            session
                .req_header()
                .headers
                .get_all("x-forwarded-for")
                .iter()
                .map(|v| v.as_bytes()),
            &live.config.trusted_proxies,
        )
    }

    /// Whether the access log takes requests of `route`.
    pub(super) fn logs(&self, route: Route) -> bool {
        self.gw.access_log.as_ref().is_some_and(|l| l.wants(route))
    }

    /// The access-log line of a finished request, if its route is logged.
    pub(super) fn access_log(&self, session: &Session, ctx: &mut Ctx) {
        let Some(log) = self.gw.access_log.as_ref().filter(|l| l.wants(ctx.route)) else {
            return;
        };
        let client_ip = match ctx.client_ip {
            Some(ip) => ip,
            None => Self::client_ip(session, &ctx.live),
        };
        log.record(Line {
            time_ms: now_ms(),
            route: ctx.route,
            outcome: ctx.outcome,
            status: session.response_written().map_or(0, |r| r.status.as_u16()),
            latency_us: u64::try_from(ctx.started.elapsed().as_micros()).unwrap_or(u64::MAX),
            client_ip,
            uid: ctx.uid.take(),
            reservation: ctx.reservation_id.take(),
        });
    }
}
