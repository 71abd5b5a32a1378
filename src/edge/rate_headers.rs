//! The headers of a `429 rate_limited`: what a refused client is told about the limit it hit,
//! and when to come back.
//!
//! By default (`rate_limit_headers: draft`) they are the two structured fields of
//! draft-ietf-httpapi-ratelimit-headers-10, naming the rule that refused as the policy:
//!
//! ```text
//! RateLimit-Policy: "per-uid";q=5;w=10     the rule: 5 requests (q) per 10 s window (w)
//! RateLimit: "per-uid";r=0;t=7             nothing remaining (r), more quota in 7 s (t)
//! Retry-After: 8                           t plus a little jitter, never earlier than t
//! ```
//!
//! `legacy` sends the older `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`
//! (the window's reset, without jitter) instead, and `both` sends both sets. `Retry-After` is
//! always there. The jitter spreads refused clients over up to a fifth of the wait (at least
//! one second), so a crowd refused in the same second does not come back in the same second.
//!
//! The policy field of each rule never changes and is formatted once, when the gateway is
//! built; only the numbers of a refusal are formatted per `429`.

use std::cell::Cell;

use crate::admission::rate::RateLimited;
use crate::config::{Limit, RateLimitHeaders};

/// The rate-limit headers of one gateway: the mode and each rule's `RateLimit-Policy` value.
#[derive(Debug, Clone)]
pub struct RateHeaders {
    mode: RateLimitHeaders,
    /// Per rule, in file order: the policy's name as a structured-field String.
    names: Vec<String>,
    /// Per rule: the whole `RateLimit-Policy` value.
    policies: Vec<String>,
}

/// The most header lines a refusal has (`Retry-After`, two draft and three legacy fields).
pub const MAX_HEADERS: usize = 6;

/// The header lines of one refusal, formatted; see [`RateHeaders::refusal`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitedHeaders<'a> {
    /// `Retry-After`, in seconds.
    pub retry_after: String,
    /// `RateLimit` (draft), if sent.
    pub ratelimit: Option<String>,
    /// `RateLimit-Policy` (draft), if sent: the rule's, formatted once.
    pub policy: Option<&'a str>,
    /// `RateLimit-Limit`, `-Remaining`, `-Reset` (legacy), if sent.
    pub legacy: Option<[String; 3]>,
}

impl LimitedHeaders<'_> {
    /// Write the headers as (name, value) pairs into `out`, in the order they are sent, and
    /// say how many there are.
    pub fn pairs<'s>(&'s self, out: &mut [(&'static str, &'s str); MAX_HEADERS]) -> usize {
        let mut n = 0;
        let mut push = |name, value| {
            out[n] = (name, value);
            n += 1;
        };
        push("retry-after", self.retry_after.as_str());
        if let Some(policy) = self.policy {
            push("ratelimit-policy", policy);
        }
        if let Some(ratelimit) = &self.ratelimit {
            push("ratelimit", ratelimit.as_str());
        }
        if let Some([limit, remaining, reset]) = &self.legacy {
            push("ratelimit-limit", limit.as_str());
            push("ratelimit-remaining", remaining.as_str());
            push("ratelimit-reset", reset.as_str());
        }
        n
    }
}

/// `text` as a structured-field String (RFC 8941 §3.3.3): quoted, with `"` and `\` escaped.
/// The configuration admits only visible ASCII and spaces in a limit's name; anything else is
/// left out rather than sent as an invalid field.
fn sf_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => {}
        }
    }
    out.push('"');
    out
}

impl RateHeaders {
    /// The headers of `limits` (in file order) in `mode`.
    pub fn new(mode: RateLimitHeaders, limits: &[Limit]) -> Self {
        let names: Vec<String> = limits.iter().map(|l| sf_string(&l.name)).collect();
        let policies = limits
            .iter()
            .zip(&names)
            .map(|(l, name)| {
                // The window in whole seconds (windows are at least 1 s; see config).
                let window = l.per.as_secs().max(1);
                format!("{name};q={};w={window}", l.requests)
            })
            .collect();
        RateHeaders {
            mode,
            names,
            policies,
        }
    }

    /// The headers for `limited`, with `jitter` (0 to 1) placing `Retry-After` within its
    /// spread; the edge passes [`jitter`].
    pub fn refusal(&self, limited: &RateLimited, jitter: f64) -> LimitedHeaders<'_> {
        let reset = limited.reset_secs.max(1);
        let draft = matches!(self.mode, RateLimitHeaders::Draft | RateLimitHeaders::Both);
        let legacy = matches!(self.mode, RateLimitHeaders::Legacy | RateLimitHeaders::Both);
        let (policy, ratelimit) = match (draft, self.names.get(limited.rule)) {
            (true, Some(name)) => (
                self.policies.get(limited.rule).map(String::as_str),
                Some(format!("{name};r={};t={reset}", limited.remaining)),
            ),
            _ => (None, None),
        };
        LimitedHeaders {
            retry_after: retry_after(reset, jitter).to_string(),
            ratelimit,
            policy,
            legacy: legacy.then(|| {
                [
                    limited.limit.to_string(),
                    limited.remaining.to_string(),
                    reset.to_string(),
                ]
            }),
        }
    }
}

/// `Retry-After` for a window that resets in `reset` seconds: `reset` plus up to a fifth of it
/// (at least one second), placed by `jitter` in 0..1. Never earlier than `reset` (the draft:
/// Retry-After should not point before the RateLimit reset).
pub fn retry_after(reset: u64, jitter: f64) -> u64 {
    let spread = (reset / 5).max(1);
    let extra = (jitter.clamp(0.0, 1.0) * (spread + 1) as f64) as u64;
    reset + extra.min(spread)
}

thread_local! {
    /// xorshift64 state of this thread, seeded from the OS once.
    static JITTER: Cell<u64> = Cell::new({
        let mut seed = [0u8; 8];
        // A failed seed only makes the jitter predictable, never wrong.
        let _ = getrandom::fill(&mut seed);
        u64::from_le_bytes(seed) | 1
    });
}

/// A number in 0..1 for [`RateHeaders::refusal`]: a per-thread xorshift, no lock, no syscall.
pub fn jitter() -> f64 {
    JITTER.with(|state| {
        let mut x = state.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        (x >> 11) as f64 / (1u64 << 53) as f64
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LimitKey;
    use std::time::Duration;

    fn limit(name: &str, requests: u64, per: u64) -> Limit {
        Limit {
            name: name.to_string(),
            key: LimitKey::Uid,
            requests,
            per: Duration::from_secs(per),
            dry_run: false,
            expected_keys: 16,
            scope: crate::config::Scope::Local,
            buys: true,
        }
    }

    fn refused(rule: usize, limit: u64, reset_secs: u64) -> RateLimited {
        RateLimited {
            rule,
            limit,
            remaining: 0,
            reset_secs,
        }
    }

    #[test]
    fn draft_names_the_rule_as_the_policy() {
        let h = RateHeaders::new(
            RateLimitHeaders::Draft,
            &[limit("per-ip", 50, 10), limit("per-uid", 5, 10)],
        );
        let r = h.refusal(&refused(1, 5, 7), 0.0);
        assert_eq!(r.policy, Some(r#""per-uid";q=5;w=10"#));
        assert_eq!(r.ratelimit.as_deref(), Some(r#""per-uid";r=0;t=7"#));
        assert_eq!(r.retry_after, "7");
        assert_eq!(r.legacy, None);
        let mut pairs = [("", ""); MAX_HEADERS];
        let n = r.pairs(&mut pairs);
        let names: Vec<_> = pairs[..n].iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["retry-after", "ratelimit-policy", "ratelimit"]);
    }

    #[test]
    fn legacy_and_both() {
        let limits = [limit("global", 20000, 1)];
        let headers = RateHeaders::new(RateLimitHeaders::Legacy, &limits);
        let legacy = headers.refusal(&refused(0, 20000, 1), 0.0);
        assert_eq!(legacy.policy, None);
        assert_eq!(legacy.ratelimit, None);
        assert_eq!(
            legacy.legacy,
            Some(["20000".to_string(), "0".to_string(), "1".to_string()])
        );
        let headers = RateHeaders::new(RateLimitHeaders::Both, &limits);
        let both = headers.refusal(&refused(0, 20000, 1), 0.0);
        assert_eq!(both.pairs(&mut [("", ""); MAX_HEADERS]), MAX_HEADERS);
        assert_eq!(both.policy, Some(r#""global";q=20000;w=1"#));
    }

    #[test]
    fn names_are_structured_field_strings() {
        assert_eq!(sf_string(r#"a "b" \c"#), r#""a \"b\" \\c""#);
        assert_eq!(sf_string("naïve"), r#""nave""#);
    }

    #[test]
    fn retry_after_is_never_before_the_reset_and_spreads() {
        for reset in [1u64, 2, 7, 10, 60] {
            let spread = (reset / 5).max(1);
            for j in [0.0, 0.25, 0.5, 0.999, 1.0, -3.0, 7.0] {
                let r = retry_after(reset, j);
                assert!((reset..=reset + spread).contains(&r), "{reset} {j} -> {r}");
            }
            assert_eq!(retry_after(reset, 0.0), reset);
            assert_eq!(retry_after(reset, 1.0), reset + spread);
        }
        // The generator covers its range: over many draws both ends of a 10 s wait appear.
        let seen: std::collections::HashSet<u64> =
            (0..500).map(|_| retry_after(10, jitter())).collect();
        assert_eq!(seen, [10, 11, 12].into_iter().collect());
        assert!((0..1000).map(|_| jitter()).all(|j| (0.0..1.0).contains(&j)));
    }
}
