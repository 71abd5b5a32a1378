//! What one client may do, as the file sets it: the rate limits (`limits:`, with their sketch
//! sizes and cluster scope) and the public listener's limits (`http:`).

use std::collections::HashSet;
use std::time::Duration;

use super::context::Reading;
use super::error::ConfigError;
use super::schema::{FileConfig, FileHttp, LimitKey, LimitScope, StoreKind};
use super::{H2Limits, HttpLimits, Limit, Scope};

/// Distinct keys a per-IP or per-UID limit is sized for when the file does not say.
const DEFAULT_EXPECTED_KEYS: usize = 1_000_000;
/// The most distinct keys a limit may be sized for: 2^22, whose sketch takes 32 MiB (128 MiB
/// with four-byte counters).
const MAX_EXPECTED_KEYS: usize = 1 << 22;

/// Pingora reads at most this much of a request's head (1 MiB); `max_header_bytes` and
/// `max_uri_bytes` must fit in it to mean anything.
const MAX_HEAD_BYTES: usize = 1024 * 1024 - 1;

/// A buy's body is read whole before it is forwarded, into Pingora's replay buffer (64 KiB):
/// `max_body_bytes` must fit in it.
const MAX_BODY_BYTES: u64 = 64 * 1024;

/// What RFC 9113 §6.5.2 adds to each header field of a decoded list: `max_header_list_size`
/// defaults to `max_header_bytes` plus this for each of `max_header_count` fields.
const H2_FIELD_OVERHEAD: usize = 32;

pub(super) fn resolve_http(cx: &Reading, http: &FileHttp) -> Result<HttpLimits, ConfigError> {
    let at_least = |key: &str, value: u64, least: u64, most: u64| {
        if value < least || value > most {
            Err(cx.err(
                &format!("http.{key}"),
                format!("http.{key} must be between {least} and {most}; found {value}"),
            ))
        } else {
            Ok(())
        }
    };
    at_least(
        "max_uri_bytes",
        http.max_uri_bytes as u64,
        256,
        MAX_HEAD_BYTES as u64,
    )?;
    at_least(
        "max_header_bytes",
        http.max_header_bytes as u64,
        1024,
        MAX_HEAD_BYTES as u64,
    )?;
    at_least(
        "max_header_count",
        http.max_header_count as u64,
        16,
        100_000,
    )?;
    at_least("max_body_bytes", http.max_body_bytes, 0, MAX_BODY_BYTES)?;
    let h2 = &http.h2;
    let list_default = http
        .max_header_bytes
        .saturating_add(H2_FIELD_OVERHEAD.saturating_mul(http.max_header_count));
    let list = h2
        .max_header_list_size
        .map_or(list_default as u64, u64::from);
    at_least("h2.max_header_list_size", list, 1024, u64::from(u32::MAX))?;
    let streams = u64::from(h2.max_concurrent_streams.unwrap_or(100));
    at_least("h2.max_concurrent_streams", streams, 1, 10_000)?;
    let pending = h2.max_pending_reset_streams.unwrap_or(20) as u64;
    at_least("h2.max_pending_reset_streams", pending, 1, 10_000)?;
    let errors = h2.max_error_resets.unwrap_or(100) as u64;
    at_least("h2.max_error_resets", errors, 1, 100_000)?;
    at_least(
        "keepalive_requests",
        u64::from(http.keepalive_requests),
        1,
        u64::from(u32::MAX),
    )?;
    let keepalive_secs = http.keepalive_timeout.0.as_secs();
    if keepalive_secs == 0 || http.keepalive_timeout.0.subsec_nanos() != 0 {
        return Err(cx.err(
            "http.keepalive_timeout",
            format!(
                "http.keepalive_timeout is counted in whole seconds, at least 1s; found {:?}",
                http.keepalive_timeout.0
            ),
        ));
    }
    if http.header_timeout.0 < Duration::from_millis(100) {
        return Err(cx.err(
            "http.header_timeout",
            format!(
                "http.header_timeout must be at least 100ms; found {:?}",
                http.header_timeout.0
            ),
        ));
    }
    Ok(HttpLimits {
        header_timeout: http.header_timeout.0,
        max_uri_bytes: http.max_uri_bytes,
        max_header_bytes: http.max_header_bytes,
        max_header_count: http.max_header_count,
        max_body_bytes: http.max_body_bytes,
        keepalive_secs,
        keepalive_requests: http.keepalive_requests,
        h2: H2Limits {
            max_concurrent_streams: streams as u32,
            max_header_list_size: list as u32,
            max_pending_reset_streams: pending as usize,
            max_error_resets: errors as usize,
        },
    })
}

/// The largest limit: the sketch's widest counters (four bytes) count a little past it.
const MAX_REQUESTS: u64 = 1_000_000_000;

/// How often a `scope: cluster` rule syncs when the file does not say.
const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_millis(500);
/// The shortest sync interval: each sync is one pipeline per rule.
const MIN_SYNC_INTERVAL: Duration = Duration::from_millis(100);

pub(super) fn resolve_limits(cx: &Reading, file: &FileConfig) -> Result<Vec<Limit>, ConfigError> {
    let mut names = HashSet::new();
    let mut limits = Vec::with_capacity(file.limits.len());
    for (i, l) in file.limits.iter().enumerate() {
        let at = |key: &str| format!("limits[{i}].{key}");
        // The name travels as the policy name of the RateLimit headers (a structured-field
        // String): visible ASCII and spaces only.
        if l.name.is_empty() || !l.name.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
            return Err(cx.err(
                &at("name"),
                format!(
                    "a limit's name is sent in the RateLimit headers: use visible ASCII \
                     (letters, digits, -, _), found {:?}",
                    l.name
                ),
            ));
        }
        if !names.insert(l.name.as_str()) {
            return Err(cx.err(&at("name"), format!("a second limit is named {:?}", l.name)));
        }
        if l.requests == 0 {
            return Err(cx.err(&at("requests"), "requests must be at least 1"));
        }
        if l.requests > MAX_REQUESTS {
            return Err(cx.err(
                &at("requests"),
                format!(
                    "requests is at most {MAX_REQUESTS} per window; found {}",
                    l.requests
                ),
            ));
        }
        // Windows are counted in milliseconds and zeroed at their first request: a window
        // shorter than a second would spend more time being reset than counting.
        if l.per.0 < Duration::from_secs(1) {
            return Err(cx.err(&at("per"), "per must be at least 1s"));
        }
        let expected_keys = match (l.key, l.expected_keys) {
            (_, Some(0)) => {
                return Err(cx.err(&at("expected_keys"), "expected_keys must be at least 1"))
            }
            (_, Some(n)) if n > MAX_EXPECTED_KEYS => {
                return Err(cx.err(
                    &at("expected_keys"),
                    format!(
                        "expected_keys is at most {MAX_EXPECTED_KEYS} (its sketch takes up to 128 MiB); \
                         found {n}"
                    ),
                ))
            }
            (_, Some(n)) => n,
            (LimitKey::Global, None) => 1,
            (_, None) => DEFAULT_EXPECTED_KEYS,
        };
        let scope = match (l.scope, l.sync_interval) {
            (LimitScope::Local, None) => Scope::Local,
            (LimitScope::Local, Some(_)) => {
                return Err(cx.err(
                    &at("sync_interval"),
                    "sync_interval is for scope: cluster (a local rule has nothing to sync)",
                ))
            }
            (LimitScope::Cluster, _) if matches!(file.store.kind, StoreKind::Memory) => {
                return Err(cx.err(
                    &at("scope"),
                    "scope: cluster counts across the edges in Redis: it needs store.kind redis \
                     (or store.cluster)",
                ))
            }
            (LimitScope::Cluster, sync) => {
                let sync = sync.map_or(DEFAULT_SYNC_INTERVAL, |d| d.0);
                if sync < MIN_SYNC_INTERVAL || sync >= l.per.0 {
                    return Err(cx.err(
                        &at("sync_interval"),
                        format!(
                            "sync_interval must be at least {MIN_SYNC_INTERVAL:?} and shorter \
                             than per ({:?}); found {sync:?}",
                            l.per.0
                        ),
                    ));
                }
                Scope::Cluster { sync }
            }
        };
        limits.push(Limit {
            name: l.name.clone(),
            key: l.key,
            requests: l.requests,
            per: l.per.0,
            dry_run: l.dry_run,
            expected_keys,
            scope,
            buys: l.buys,
        });
    }
    Ok(limits)
}
