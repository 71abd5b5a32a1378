//! Every metric the gateway exports, in one registry. Label values are bounded: routes and
//! outcomes are fixed names, sales are the configured product ids, limits the configured names;
//! never a UID or an IP. The per-request counters are resolved once at start-up into a table, so
//! counting a request is one atomic add with no label hashing.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::ground::Outcome;

/// The routes requests are counted under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /` and `/static/*`.
    Static,
    /// `GET /sale/{product}/button.js` and `GET /api/sale` (what the page asks about a sale).
    Button,
    /// `POST /buy/{product}/{token}`.
    Buy,
    /// `GET /api/challenge`.
    Challenge,
    /// `/api/queue` and `/api/queue/draw`: the waiting room.
    Queue,
    /// `GET /api/buy/status`: whether a pending buy won.
    BuyStatus,
    /// A shop route of `routes:`, passed to its upstream.
    Shop,
    /// Anything else.
    Other,
}

impl Route {
    /// Every route.
    pub const ALL: [Route; 8] = [
        Route::Static,
        Route::Button,
        Route::Buy,
        Route::Challenge,
        Route::Queue,
        Route::BuyStatus,
        Route::Shop,
        Route::Other,
    ];

    /// The label value.
    pub const fn name(self) -> &'static str {
        match self {
            Route::Static => "static",
            Route::Button => "button",
            Route::Buy => "buy",
            Route::Challenge => "challenge",
            Route::Queue => "queue",
            Route::BuyStatus => "buy_status",
            Route::Shop => "shop",
            Route::Other => "other",
        }
    }
}

/// The gateway's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Vec<IntCounter>,
    /// Time of one `reserve` call to the stock store.
    pub store_reserve: Histogram,
    /// Time of one `release` call to the stock store.
    pub store_release: Histogram,
    /// Time of one claim of a captcha in the single-use store.
    pub store_captcha: Histogram,
    /// Time from forwarding a winner to origin's answer header.
    pub upstream_seconds: Histogram,
    /// Units left per sale, refreshed from the store on every scrape.
    pub stock_remaining: IntGaugeVec,
    dry_run: IntCounterVec,
    rate_limited: IntCounterVec,
    captcha_difficulty: IntGaugeVec,
    /// Forwards settled by the origin contract, by what became of the unit.
    pub settled: Settled,
    /// Reservations waiting for the origin to say whether it holds their order.
    pub unsettled: IntGauge,
    /// Access-log lines dropped because the writer was behind.
    pub access_log_dropped: IntCounter,
    /// Reservations the store's replicas did not acknowledge in time (`store.wait`).
    pub unacknowledged: IntCounter,
    /// Reserves sent and never answered: told `202 pending`.
    pub unanswered: IntCounter,
    /// Configuration reloads, by result.
    pub reloads: Reloads,
    /// `flashgate_limit_syncs_total{result}`: syncs of `scope: cluster` limits with Redis.
    pub limit_syncs: LimitSyncs,
    /// `flashgate_slow_clients_total{reason}`: connections closed for sending too slowly.
    pub slow_clients: SlowCounters,
    /// The waiting rooms' metrics.
    pub queue: QueueMetrics,
    /// The shop routes' and their upstreams' metrics.
    pub shop: ShopMetrics,
}

/// The counters of one rule, exported by the metrics.
#[derive(Clone)]
pub struct RuleCounters {
    /// Requests the rule refused.
    pub refused: IntCounter,
    /// Requests a dry-run rule would have refused.
    pub dry_run: IntCounter,
}

/// The counters of `flashgate_slow_clients_total`.
#[derive(Clone)]
pub struct SlowCounters {
    /// Closed because a head took longer than `http.header_timeout`.
    pub header_timeout: IntCounter,
    /// Dropped because the TLS ClientHello took longer (`edge::hello`).
    pub client_hello: IntCounter,
    /// Shut down because the rest of the TLS handshake took longer (`edge::hello`).
    pub tls_handshake: IntCounter,
}

/// The waiting rooms' metrics, per queued sale.
pub struct QueueMetrics {
    /// `flashgate_queue_waiting{sale}`: visitors joined and not yet let through (the store's
    /// count, as this edge last read it: every edge reports the same value).
    pub waiting: IntGaugeVec,
    /// `flashgate_queue_admitted_total{sale}`: places let through, all edges together, as this
    /// edge learned them (every edge reports the sale's count: take the max).
    pub admitted: IntCounterVec,
    /// `flashgate_queue_wait_seconds{sale}`: from join to admission, observed when this edge
    /// first answers a visitor `admitted`.
    pub wait: HistogramVec,
    /// `flashgate_queue_abandoned_total{sale}`: passes that expired unused — places let through
    /// more than `pass_ttl` ago, less the buyers (every edge counts the same; take the max).
    pub abandoned: IntCounterVec,
}

impl QueueMetrics {
    fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let waiting = IntGaugeVec::new(
            Opts::new(
                "flashgate_queue_waiting",
                "Visitors in a sale's waiting room not yet let through.",
            ),
            &["sale"],
        )?;
        registry.register(Box::new(waiting.clone()))?;
        let admitted = IntCounterVec::new(
            Opts::new(
                "flashgate_queue_admitted_total",
                "Visitors let through, all edges together, as this edge learned them (every edge \
                 reports the same count).",
            ),
            &["sale"],
        )?;
        registry.register(Box::new(admitted.clone()))?;
        let wait = HistogramVec::new(
            HistogramOpts::new(
                "flashgate_queue_wait_seconds",
                "Time from joining a waiting room to being let through.",
            )
            .buckets(vec![
                0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 3600.0,
            ]),
            &["sale"],
        )?;
        registry.register(Box::new(wait.clone()))?;
        let abandoned = IntCounterVec::new(
            Opts::new(
                "flashgate_queue_abandoned_total",
                "Passes that expired unused: visitors let through more than pass_ttl ago, less \
                 the buyers (every edge reports the same count).",
            ),
            &["sale"],
        )?;
        registry.register(Box::new(abandoned.clone()))?;
        Ok(QueueMetrics {
            waiting,
            admitted,
            wait,
            abandoned,
        })
    }
}

/// The status classes a shop answer is counted under (`1xx` … `5xx`).
pub const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The index in [`STATUS_CLASSES`] of `status` (below 100 counts as `1xx`, above 599 as `5xx`).
pub fn status_class(status: u16) -> usize {
    usize::from((status / 100).clamp(1, 5)) - 1
}

/// The metrics of shop routes and their upstreams' servers. Their labels are the configured
/// route, upstream and server names: bounded by the file.
pub struct ShopMetrics {
    /// `flashgate_route_requests_total{route,class}`: answers on each route by status class,
    /// the upstream's and the edge's own (`502`, `503`, `504`) alike.
    pub route_requests: IntCounterVec,
    /// `flashgate_route_seconds{route}`: from a request's arrival to its end.
    pub route_seconds: HistogramVec,
    /// `flashgate_upstream_requests_total{upstream,server,class}`: answers of each server by
    /// status class, and `error` for a connection that failed or broke.
    pub server_requests: IntCounterVec,
    /// `flashgate_upstream_healthy{upstream,server}`: 1 when a server may be picked (its
    /// health checks pass and it is not ejected), read when scraped.
    pub server_healthy: IntGaugeVec,
    /// `flashgate_upstream_ejections_total{upstream,server}`: times a server was left out
    /// after failed connects in a row.
    pub ejections: IntCounterVec,
}

impl ShopMetrics {
    fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let route_requests = IntCounterVec::new(
            Opts::new(
                "flashgate_route_requests_total",
                "Answers on each shop route, by status class (the upstream's and the edge's own).",
            ),
            &["route", "class"],
        )?;
        registry.register(Box::new(route_requests.clone()))?;
        let route_seconds = HistogramVec::new(
            HistogramOpts::new(
                "flashgate_route_seconds",
                "Time from a shop route's request to its end (the answer sent, or the request failed).",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route"],
        )?;
        registry.register(Box::new(route_seconds.clone()))?;
        let server_requests = IntCounterVec::new(
            Opts::new(
                "flashgate_upstream_requests_total",
                "Answers of each upstream server, by status class; class error: the connection \
                 failed or broke before an answer.",
            ),
            &["upstream", "server", "class"],
        )?;
        registry.register(Box::new(server_requests.clone()))?;
        let server_healthy = IntGaugeVec::new(
            Opts::new(
                "flashgate_upstream_healthy",
                "1 when an upstream server may be picked (health checks pass, not ejected).",
            ),
            &["upstream", "server"],
        )?;
        registry.register(Box::new(server_healthy.clone()))?;
        let ejections = IntCounterVec::new(
            Opts::new(
                "flashgate_upstream_ejections_total",
                "Times an upstream server was left out after connects that failed in a row.",
            ),
            &["upstream", "server"],
        )?;
        registry.register(Box::new(ejections.clone()))?;
        Ok(ShopMetrics {
            route_requests,
            route_seconds,
            server_requests,
            server_healthy,
            ejections,
        })
    }
}

/// `flashgate_limit_syncs_total{result}`.
pub struct LimitSyncs {
    /// The counts went to Redis and the totals came back.
    pub ok: IntCounter,
    /// Redis did not answer: the edge counted alone meanwhile.
    pub failed: IntCounter,
}

/// `flashgate_reloads_total{result}`.
pub struct Reloads {
    /// The new configuration is in place.
    pub ok: IntCounter,
    /// The file was refused; the running configuration stays.
    pub refused: IntCounter,
}

/// `flashgate_settlements_total{result}`: what became of units whose forward ended.
pub struct Settled {
    /// The origin holds the order (a 2xx, or `200` to the settlement question).
    pub kept: IntCounter,
    /// The origin holds none (never reached, a 4xx, or `404` to the question): back on sale.
    pub returned: IntCounter,
    /// The origin answered `410`, its stock spent: the unit left the sale, not back on sale.
    pub discarded: IntCounter,
    /// The outcome is unknown: left to the ledger consumer (Redis) or queued to ask (embedded).
    pub deferred: IntCounter,
    /// The settlement question got no definite answer and will be asked again.
    pub retried: IntCounter,
}

const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

impl Metrics {
    /// Register every metric.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests_vec = IntCounterVec::new(
            Opts::new(
                "flashgate_requests_total",
                "Requests by route and outcome (see the outcome table in the README).",
            ),
            &["route", "outcome"],
        )?;
        registry.register(Box::new(requests_vec.clone()))?;
        let mut requests = Vec::with_capacity(Route::ALL.len() * Outcome::ALL.len());
        for route in Route::ALL {
            for outcome in Outcome::ALL {
                requests.push(requests_vec.with_label_values(&[route.name(), outcome.name()]));
            }
        }
        let store_seconds = HistogramVec::new(
            HistogramOpts::new(
                "flashgate_store_seconds",
                "Time of one stock-store call, by operation.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["op"],
        )?;
        registry.register(Box::new(store_seconds.clone()))?;
        let upstream_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "flashgate_upstream_seconds",
                "Time from forwarding a winner to the origin's response header.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
        )?;
        registry.register(Box::new(upstream_seconds.clone()))?;
        let stock_remaining = IntGaugeVec::new(
            Opts::new(
                "flashgate_stock_remaining",
                "Units left per sale, read from the store when scraped.",
            ),
            &["sale"],
        )?;
        registry.register(Box::new(stock_remaining.clone()))?;
        let dry_run = IntCounterVec::new(
            Opts::new(
                "flashgate_rate_limit_dry_run_total",
                "Requests a dry-run rate limit would have refused.",
            ),
            &["limit"],
        )?;
        registry.register(Box::new(dry_run.clone()))?;
        let rate_limited = IntCounterVec::new(
            Opts::new(
                "flashgate_rate_limited_total",
                "Requests refused (429) by each rate limit, by its name in limits:.",
            ),
            &["limit"],
        )?;
        registry.register(Box::new(rate_limited.clone()))?;
        let captcha_difficulty = IntGaugeVec::new(
            Opts::new(
                "flashgate_captcha_difficulty",
                "Leading zero bits of new proof-of-work challenges, per sale with captcha: pow.",
            ),
            &["sale"],
        )?;
        registry.register(Box::new(captcha_difficulty.clone()))?;
        let settled = IntCounterVec::new(
            Opts::new(
                "flashgate_settlements_total",
                "Units whose forward ended, by what became of them: kept, returned, discarded \
                 (the origin answered 410: its stock is spent), deferred (outcome unknown, \
                 settled later), retried (the origin gave no answer yet).",
            ),
            &["result"],
        )?;
        registry.register(Box::new(settled.clone()))?;
        let unsettled = IntGauge::with_opts(Opts::new(
            "flashgate_unsettled",
            "Reservations waiting for the origin to say whether it holds their order \
             (embedded store).",
        ))?;
        registry.register(Box::new(unsettled.clone()))?;
        let access_log_dropped = IntCounter::with_opts(Opts::new(
            "flashgate_access_log_dropped_total",
            "Access-log lines dropped because the log's writer was behind (its buffer full).",
        ))?;
        registry.register(Box::new(access_log_dropped.clone()))?;
        let unacknowledged = IntCounter::with_opts(Opts::new(
            "flashgate_reservations_unacknowledged_total",
            "Reservations fewer replicas than store.wait.replicas acknowledged within \
             store.wait.timeout: answered 202 pending, never forwarded, left to the ledger.",
        ))?;
        registry.register(Box::new(unacknowledged.clone()))?;
        let unanswered = IntCounter::with_opts(Opts::new(
            "flashgate_reserves_unanswered_total",
            "Reserves sent to the store that never answered (a timeout, a connection broken \
             after the write): answered 202 pending with the attempt's status URL, never \
             forwarded; the unit, if one was taken, is left to the ledger.",
        ))?;
        registry.register(Box::new(unanswered.clone()))?;
        let reloads = IntCounterVec::new(
            Opts::new(
                "flashgate_reloads_total",
                "Configuration reloads (SIGHUP, POST /admin/reload): ok, or refused (the file \
                 does not load; the running configuration stays).",
            ),
            &["result"],
        )?;
        registry.register(Box::new(reloads.clone()))?;
        let limit_syncs = IntCounterVec::new(
            Opts::new(
                "flashgate_limit_syncs_total",
                "Syncs of scope: cluster limits with Redis, per rule and interval: ok, or failed \
                 (this edge counted alone until the next one that succeeds).",
            ),
            &["result"],
        )?;
        registry.register(Box::new(limit_syncs.clone()))?;
        let slow_clients = IntCounterVec::new(
            Opts::new(
                "flashgate_slow_clients_total",
                "Public connections of slow clients closed because a request head (or an \
                 HTTP/2 preface) took longer than http.header_timeout from the accept \
                 (reason header_timeout), the TLS ClientHello did (reason client_hello) or the \
                 rest of the TLS handshake did (reason tls_handshake).",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(slow_clients.clone()))?;
        let queue = QueueMetrics::register(&registry)?;
        let shop = ShopMetrics::register(&registry)?;
        Ok(Metrics {
            registry,
            requests,
            store_reserve: store_seconds.with_label_values(&["reserve"]),
            store_release: store_seconds.with_label_values(&["release"]),
            store_captcha: store_seconds.with_label_values(&["captcha"]),
            upstream_seconds,
            stock_remaining,
            dry_run,
            rate_limited,
            captcha_difficulty,
            settled: Settled {
                kept: settled.with_label_values(&["kept"]),
                returned: settled.with_label_values(&["returned"]),
                discarded: settled.with_label_values(&["discarded"]),
                deferred: settled.with_label_values(&["deferred"]),
                retried: settled.with_label_values(&["retried"]),
            },
            unsettled,
            access_log_dropped,
            unacknowledged,
            unanswered,
            reloads: Reloads {
                ok: reloads.with_label_values(&["ok"]),
                refused: reloads.with_label_values(&["refused"]),
            },
            limit_syncs: LimitSyncs {
                ok: limit_syncs.with_label_values(&["ok"]),
                failed: limit_syncs.with_label_values(&["failed"]),
            },
            slow_clients: SlowCounters {
                header_timeout: slow_clients.with_label_values(&["header_timeout"]),
                client_hello: slow_clients.with_label_values(&["client_hello"]),
                tls_handshake: slow_clients.with_label_values(&["tls_handshake"]),
            },
            queue,
            shop,
        })
    }

    /// Count one finished request.
    pub fn request(&self, route: Route, outcome: Outcome) {
        self.requests[route as usize * Outcome::ALL.len() + outcome.index()].inc();
    }

    /// The counter of one request kind, for tests and reports.
    pub fn requests(&self, route: Route, outcome: Outcome) -> u64 {
        self.requests[route as usize * Outcome::ALL.len() + outcome.index()].get()
    }

    /// Record the units left of `product`'s sale.
    pub fn set_remaining(&self, product: u64, remaining: u64) {
        self.stock_remaining
            .with_label_values(&[&product.to_string()])
            .set(i64::try_from(remaining).unwrap_or(i64::MAX));
    }

    /// Record the current proof-of-work difficulty of `product`'s sale.
    pub fn set_difficulty(&self, product: u64, bits: u8) {
        self.captcha_difficulty
            .with_label_values(&[&product.to_string()])
            .set(i64::from(bits));
    }

    /// Export the waiting-room metrics of `product`'s queued sale (at zero until they move).
    pub fn queue_sale(&self, product: u64) {
        let label = product.to_string();
        self.queue.waiting.with_label_values(&[&label]);
        self.queue.admitted.with_label_values(&[&label]);
        self.queue.wait.with_label_values(&[&label]);
        self.queue.abandoned.with_label_values(&[&label]);
    }

    /// The counters of limit `name`: its refusals and its dry-run would-be refusals.
    pub fn limit_counters(&self, name: &str) -> RuleCounters {
        RuleCounters {
            refused: self.rate_limited.with_label_values(&[name]),
            dry_run: self.dry_run.with_label_values(&[name]),
        }
    }

    /// The text exposition format of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 * 1024);
        // Encoding into a Vec cannot fail for well-formed metrics.
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!("encoding metrics failed: {e}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_land_under_their_labels() {
        let m = Metrics::new().unwrap();
        m.request(Route::Buy, Outcome::SoldOut);
        m.request(Route::Buy, Outcome::SoldOut);
        m.request(Route::Static, Outcome::Served);
        assert_eq!(m.requests(Route::Buy, Outcome::SoldOut), 2);
        let text = String::from_utf8(m.render()).unwrap();
        assert!(text.contains(r#"flashgate_requests_total{outcome="sold_out",route="buy"} 2"#));
        assert!(text.contains(r#"flashgate_requests_total{outcome="served",route="static"} 1"#));
        for (i, o) in Outcome::ALL.iter().enumerate() {
            assert_eq!(o.index(), i, "Outcome::ALL is in declaration order");
        }
    }
}
