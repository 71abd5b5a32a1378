//! `flashgate check --probe-origin`: does the origin accept the edge's signature? One signed
//! request answers it, without making an order.
//!
//! The probe is a forward exactly as the edge signs one (`POST {origin.path}` with the
//! `X-Flashgate-*` headers and a signature made with `secrets.edge`), for a reservation that
//! exists in no store (`flashgate-probe-{ms}`, user `flashgate-probe`), stamped an hour ago. The
//! origin contract has every origin refuse a forward older than its window and commit nothing
//! for it, so the request cannot become an order; and an origin that checks the signature
//! before the age, as `flashgate-orders` does, says which of the two it refused:
//!
//! | the origin answers | verdict |
//! |---|---|
//! | `401 {"reason":"stale"}` | accepts the edge's signature (refused only for the age) |
//! | `401 {"reason":"forged"}` | refuses it: its edge secret is not `secrets.edge` |
//! | `401 {"reason":"unsigned"}` | never saw the signed headers (a proxy strips them?) |
//! | any `2xx` | took a forward an hour old: breaks the contract, may hold a probe order |
//! | another answer, or none | cannot tell, or unreachable |

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use flashgate::config::Config;
use flashgate::ground::clock::now_ms;
use flashgate::ground::signing::origin_signature;

/// How old the probe's timestamp is: far beyond any origin's window, and any clock skew.
const AGE: Duration = Duration::from_secs(3600);
/// The user the probe is for.
const PROBE_UID: &str = "flashgate-probe";
/// The most of the origin's answer that is read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// What the probe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The origin verified the edge's signature.
    Accepted,
    /// The origin refused the signature, took the probe, or could not be asked.
    Failed,
    /// The origin refused the probe without saying why.
    Inconclusive,
}

/// The report: a verdict and the lines that explain it.
pub struct Probe {
    /// What was found.
    pub verdict: Verdict,
    /// Human-readable explanation, one line each.
    pub lines: Vec<String>,
}

/// The `reason` of a JSON answer, if it has one.
#[derive(serde::Deserialize)]
struct Answer {
    reason: Option<String>,
}

/// Send the probe to `config`'s origin and judge its answer.
pub async fn probe(config: &Config) -> Probe {
    let origin = &config.origin;
    let now = now_ms();
    let stamped = now.saturating_sub(AGE.as_millis() as u64);
    let reservation = format!("flashgate-probe-{now}");
    let product = config.sales.first().map_or(0, |s| s.product);
    let signature = origin_signature(
        &config.secrets.edge,
        PROBE_UID,
        product,
        &reservation,
        stamped,
    );
    let url = format!("http://{}{}", origin.addr, origin.path);
    let mut lines = vec![format!(
        "probe: POST {url} signed with secrets.edge{}, reservation {reservation}, stamped {}s ago",
        if config.secrets.development.is_empty() {
            ""
        } else {
            " (the DEVELOPMENT secret)"
        },
        AGE.as_secs()
    )];
    let request = http::Request::post(&url)
        .header(http::header::HOST, origin.host.as_str())
        .header("x-flashgate-uid", PROBE_UID)
        .header("x-flashgate-product", product)
        .header("x-flashgate-reservation", reservation.as_str())
        .header("x-flashgate-timestamp", stamped)
        .header("x-flashgate-signature", signature)
        .body(Empty::<Bytes>::new());
    let request = match request {
        Ok(r) => r,
        Err(e) => return failed(lines, format!("cannot build the request: {e}")),
    };
    let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
    connector.set_connect_timeout(Some(origin.connect_timeout));
    let client = Client::builder(TokioExecutor::new()).build(connector);
    let answer = match tokio::time::timeout(origin.timeout, client.request(request)).await {
        Err(_) => {
            return failed(
                lines,
                format!(
                    "FAIL: the origin did not answer within origin.timeout ({:?})",
                    origin.timeout
                ),
            )
        }
        Ok(Err(e)) => {
            return failed(
                lines,
                format!(
                    "FAIL: the origin at {} cannot be reached: {}",
                    origin.addr,
                    causes(&e)
                ),
            )
        }
        Ok(Ok(answer)) => answer,
    };
    let status = answer.status().as_u16();
    let body = tokio::time::timeout(
        origin.timeout,
        Limited::new(answer.into_body(), MAX_ANSWER_BYTES).collect(),
    )
    .await
    .ok()
    .and_then(Result::ok)
    .map(|b| b.to_bytes())
    .unwrap_or_default();
    let reason = serde_json::from_slice::<Answer>(&body)
        .ok()
        .and_then(|a| a.reason);
    let shown = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
    lines.push(format!("origin answered {status} {}", shown.trim()));
    let (verdict, line) = judge(status, reason.as_deref(), &reservation);
    lines.push(line);
    Probe { verdict, lines }
}

/// `e` and its causes, `: `-joined (hyper's own message is only "client error (Connect)").
fn causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn failed(mut lines: Vec<String>, line: String) -> Probe {
    lines.push(line);
    Probe {
        verdict: Verdict::Failed,
        lines,
    }
}

/// The verdict on an answer of `status` with JSON `reason`.
fn judge(status: u16, reason: Option<&str>, reservation: &str) -> (Verdict, String) {
    match (status, reason) {
        (401, Some("stale")) => (
            Verdict::Accepted,
            "OK: the origin accepts the edge's signature (it verified the signature and refused \
             the forward only because it is an hour old; no order was made)"
                .to_string(),
        ),
        (401, Some("forged")) => (
            Verdict::Failed,
            "FAIL: the origin REFUSES the edge's signature: its edge secret differs from \
             secrets.edge (set the same FLASHGATE_EDGE_SECRET on the edge and the origin)"
                .to_string(),
        ),
        (401, Some("unsigned")) => (
            Verdict::Failed,
            "FAIL: the origin found no signed X-Flashgate-* headers: is something between the \
             edge and the origin removing them?"
                .to_string(),
        ),
        (200..=299, _) => (
            Verdict::Failed,
            format!(
                "FAIL: the origin ACCEPTED a forward stamped an hour ago: it does not refuse stale \
                 forwards as the origin contract requires, and may now hold an order for \
                 reservation {reservation} (user {PROBE_UID}); remove it"
            ),
        ),
        (500..=599, _) => (
            Verdict::Failed,
            format!("FAIL: the origin answered {status}: it is not working"),
        ),
        _ => (
            Verdict::Inconclusive,
            format!(
                "UNKNOWN: the origin refused the probe ({status}) without saying why, so whether \
                 it accepts the edge's signature cannot be told; an origin that answers a \
                 well-signed stale forward 401 {{\"reason\":\"stale\"}} (as flashgate-orders \
                 does) can be probed"
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        let v = |status, reason| judge(status, reason, "r").0;
        assert_eq!(v(401, Some("stale")), Verdict::Accepted);
        assert_eq!(v(401, Some("forged")), Verdict::Failed);
        assert_eq!(v(401, Some("unsigned")), Verdict::Failed);
        assert_eq!(v(201, None), Verdict::Failed);
        assert_eq!(v(200, Some("stale")), Verdict::Failed);
        assert_eq!(v(503, None), Verdict::Failed);
        assert_eq!(v(401, None), Verdict::Inconclusive);
        assert_eq!(v(404, None), Verdict::Inconclusive);
    }
}
