//! `flashgate storm --queue`: rehearse a sale with a waiting room. Every user joins during the
//! pre-queue (`POST /api/queue`), then polls as the page would (`GET /api/queue` with the
//! ticket) and buys with the pass the moment it is let through. Afterwards the storm checks
//! what a visitor can check: the draw's seed has the SHA-256 published when the pre-queue
//! opened, and re-running the draw (`flashgate::queue::draw`) gives every pre-queue joiner the
//! place the edge told them; and that nobody was told `admitted` after anyone was told
//! `sold_out` (the storm returns no unit, so the stock never comes back).
//!
//! Bounded: joins and polls stop at `--duration` after the start at the latest; each round of
//! polls goes through `--connections` at a time.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::http::{Method, StatusCode, Uri};
use anyhow::{bail, Context};
use futures::stream::{self, StreamExt};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::http::Http;
use super::{mint, sale_state, Plan};

/// What the queued storm saw.
#[derive(Debug, Default, Serialize)]
pub struct QueueReport {
    /// Users in the crowd.
    pub users: usize,
    /// Users who joined during the pre-queue / after the start.
    pub joined_prequeue: u64,
    /// Users who joined after the start.
    pub joined_late: u64,
    /// Users told `admitted`.
    pub admitted: u64,
    /// Buys by outcome (`won` for a 2xx).
    pub buys: BTreeMap<String, u64>,
    /// Users whose buy won.
    pub won: u64,
    /// Users told `sold_out` at their last poll.
    pub sold_out: u64,
    /// Polls answered `admitted` that were sent after a poll had been answered `sold_out`.
    /// (A buy's `sold_out` does not count: the edge's view of the queue lags the store by up
    /// to one tick, so a visitor may be told `admitted` and then find the last unit gone.)
    pub admitted_after_sold_out: u64,
    /// The largest place let through.
    pub max_admitted_place: u64,
    /// The draw as published.
    pub mode: String,
    /// SHA-256 of the seed, read when the pre-queue opened.
    pub seed_sha256: String,
    /// The seed, read after the start.
    pub seed: String,
    /// The seed matches the published hash.
    pub seed_matches: bool,
    /// Pre-queue places checked against the re-run draw, and how many differed.
    pub places_checked: u64,
    /// Places that differ from the re-run draw.
    pub places_wrong: u64,
    /// Seconds every join took, all together.
    pub joins_seconds: f64,
    /// Polls sent.
    pub polls: u64,
    /// Seconds from the start to the last poll.
    pub seconds_after_start: f64,
}

impl QueueReport {
    /// Whether every check held (the draw verified, nobody admitted after the sell-out).
    pub fn sound(&self) -> bool {
        self.seed_matches && self.places_wrong == 0 && self.admitted_after_sold_out == 0
    }

    /// A short table.
    pub fn table(&self) -> String {
        let buys: Vec<String> = self.buys.iter().map(|(k, v)| format!("{k} {v}")).collect();
        format!(
            "queued storm: {} users, {} joined in the pre-queue, {} after the start ({:.1} s)\n\
             admitted {} (largest place {}), won {}, told sold_out {}\n\
             buys: {}\n\
             admitted after the sell-out: {}\n\
             draw ({}): seed sha256 {} {}, {} places checked, {} wrong\n\
             polls {} over {:.1} s after the start\n",
            self.users,
            self.joined_prequeue,
            self.joined_late,
            self.joins_seconds,
            self.admitted,
            self.max_admitted_place,
            self.won,
            self.sold_out,
            buys.join(", "),
            self.admitted_after_sold_out,
            self.mode,
            self.seed_sha256,
            if self.seed_matches {
                "matches the seed"
            } else {
                "DOES NOT match the seed"
            },
            self.places_checked,
            self.places_wrong,
            self.polls,
            self.seconds_after_start,
        )
    }
}

/// A poll's answer, whether it was sent after a `sold_out` answer, and the buy's outcome if
/// the answer let the visitor through.
type Polled = (Value, bool, Option<String>);

/// One visitor's state.
#[derive(Clone, Default)]
struct Visitor {
    ticket: String,
    join_number: u64,
    prequeue: bool,
    place: Option<u64>,
    state: String,
    bought: Option<String>,
}

async fn get_json(
    http: &Http,
    uri: &str,
    headers: &[(&'static str, &str)],
    method: Method,
) -> anyhow::Result<(StatusCode, Value)> {
    let uri: Uri = uri.parse()?;
    let answer = http.send(method, uri, headers).await?;
    let v = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    Ok((answer.status, v))
}

/// Run the queued storm described by `plan`.
pub async fn run(plan: Plan) -> anyhow::Result<QueueReport> {
    let base = plan.target.trim_end_matches('/').to_string();
    let product = plan.product;
    let http = Http::new(plan.connections);
    let mut report = QueueReport {
        users: plan.users,
        ..QueueReport::default()
    };
    let draw_url = format!("{base}/api/queue/draw?product={product}");
    let queue_url = format!("{base}/api/queue?product={product}");

    // Wait for the pre-queue to open; read the commitment.
    let waited = Instant::now();
    let draw = loop {
        let (status, v) = get_json(&http, &draw_url, &[], Method::GET).await?;
        if status == StatusCode::OK {
            break v;
        }
        if status != StatusCode::FORBIDDEN || waited.elapsed() > plan.wait {
            bail!("{draw_url} answered {status}: {v}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    report.mode = draw["mode"].as_str().unwrap_or("").to_string();
    report.seed_sha256 = draw["seed_sha256"].as_str().unwrap_or("").to_string();

    let tokens = mint(
        &plan.login_secret,
        (1..=plan.users).map(|n| format!("storm-u{n}")),
    )?;
    let bearers: Arc<Vec<String>> =
        Arc::new(tokens.iter().map(|t| format!("Bearer {t}")).collect());

    // Everyone joins, `connections` at a time.
    let joins_started = Instant::now();
    let joined: Vec<anyhow::Result<Visitor>> = stream::iter(0..plan.users)
        .map(|i| {
            let (http, url, bearers) = (http.clone(), queue_url.clone(), bearers.clone());
            async move {
                let (status, v) =
                    get_json(&http, &url, &[("authorization", &bearers[i])], Method::POST).await?;
                if status != StatusCode::OK {
                    bail!("join answered {status}: {v}");
                }
                Ok(Visitor {
                    ticket: v["ticket"].as_str().unwrap_or("").to_string(),
                    join_number: v["join_number"].as_u64().unwrap_or(0),
                    prequeue: v["prequeue"] == true,
                    place: None,
                    state: v["state"].as_str().unwrap_or("").to_string(),
                    bought: None,
                })
            }
        })
        .buffered(plan.connections)
        .collect()
        .await;
    let mut visitors = joined.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    report.joins_seconds = joins_started.elapsed().as_secs_f64();
    report.joined_prequeue = visitors.iter().filter(|v| v.prequeue).count() as u64;
    report.joined_late = visitors.len() as u64 - report.joined_prequeue;

    // The start: the buy path appears in button.js.
    let buy_path = loop {
        let state = sale_state(&http, &base, product).await?;
        if state["active"] == true {
            break state["buy_path"]
                .as_str()
                .context("no buy_path")?
                .to_string();
        }
        if waited.elapsed() > plan.wait {
            bail!(
                "the sale of product {product} did not open within {:?}",
                plan.wait
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let buy_url = Arc::new(format!("{base}{buy_path}"));
    let started = Instant::now();
    let deadline = started + plan.duration;
    let sold_out_seen = Arc::new(AtomicBool::new(false));

    // Rounds of polls until every visitor is settled (bought, or told sold_out or closed) and
    // nothing changed for a second, or the duration is over.
    let mut quiet_since = Instant::now();
    loop {
        let round_start = Instant::now();
        let polled: Vec<(usize, anyhow::Result<Polled>)> =
            stream::iter(visitors.iter().enumerate())
                .filter(|(_, v)| std::future::ready(v.bought.is_none()))
                .map(|(i, v)| {
                    let (http, url, bearers) = (http.clone(), queue_url.clone(), bearers.clone());
                    let (buy_url, sold_out_seen) = (buy_url.clone(), sold_out_seen.clone());
                    let ticket = v.ticket.clone();
                    async move {
                        let result = async {
                            let after_sold_out = sold_out_seen.load(Ordering::SeqCst);
                            let headers = [
                                ("authorization", bearers[i].as_str()),
                                ("x-queue-ticket", ticket.as_str()),
                            ];
                            let (status, v) = get_json(&http, &url, &headers, Method::GET).await?;
                            if status != StatusCode::OK {
                                bail!("poll answered {status}: {v}");
                            }
                            if v["state"] == "sold_out" {
                                sold_out_seen.store(true, Ordering::SeqCst);
                            }
                            let mut bought = None;
                            if let (true, Some(pass)) =
                                (v["state"] == "admitted", v["pass"].as_str())
                            {
                                let headers = [
                                    ("authorization", bearers[i].as_str()),
                                    ("x-queue-pass", pass),
                                ];
                                let answer =
                                    http.send(Method::POST, buy_url.parse()?, &headers).await?;
                                let outcome = if super::won(answer.status) {
                                    "won".to_string()
                                } else {
                                    serde_json::from_slice::<Value>(&answer.body)
                                        .ok()
                                        .and_then(|b| b["outcome"].as_str().map(str::to_string))
                                        .unwrap_or_else(|| answer.status.to_string())
                                };
                                bought = Some(outcome);
                            }
                            Ok((v, after_sold_out, bought))
                        }
                        .await;
                        (i, result)
                    }
                })
                .buffer_unordered(plan.connections)
                .collect()
                .await;
        let mut changed = false;
        for (i, result) in polled {
            let (v, after_sold_out, bought) = result?;
            report.polls += 1;
            let visitor = &mut visitors[i];
            let state = v["state"].as_str().unwrap_or("").to_string();
            if let Some(place) = v["place"].as_u64() {
                visitor.place = Some(place);
            }
            if state == "admitted" {
                report.admitted += 1;
                if after_sold_out {
                    report.admitted_after_sold_out += 1;
                }
                report.max_admitted_place =
                    report.max_admitted_place.max(visitor.place.unwrap_or(0));
            }
            if state != visitor.state {
                changed = true;
                visitor.state = state;
            }
            if let Some(outcome) = bought {
                changed = true;
                *report.buys.entry(outcome.clone()).or_default() += 1;
                visitor.bought = Some(outcome);
            }
        }
        if changed {
            quiet_since = Instant::now();
        }
        let settled = visitors
            .iter()
            .all(|v| v.bought.is_some() || v.state == "sold_out" || v.state == "closed");
        if (settled && quiet_since.elapsed() > Duration::from_secs(1)) || Instant::now() > deadline
        {
            break;
        }
        let rest = Duration::from_millis(250).saturating_sub(round_start.elapsed());
        tokio::time::sleep(rest).await;
    }
    report.seconds_after_start = started.elapsed().as_secs_f64();
    report.won = visitors
        .iter()
        .filter(|v| v.bought.as_deref() == Some("won"))
        .count() as u64;
    report.sold_out = visitors.iter().filter(|v| v.state == "sold_out").count() as u64;

    // The draw, re-run from the revealed seed.
    let (status, draw) = get_json(&http, &draw_url, &[], Method::GET).await?;
    if status != StatusCode::OK {
        bail!("{draw_url} answered {status} after the start");
    }
    report.seed = draw["seed"].as_str().unwrap_or("").to_string();
    let mut seed = [0u8; 32];
    report.seed_matches = hex::decode_to_slice(&report.seed, &mut seed).is_ok()
        && hex::encode(Sha256::digest(seed)) == report.seed_sha256;
    let joiners = draw["prequeue_joiners"].as_u64().unwrap_or(0);
    let places: Vec<u64> = match report.mode.as_str() {
        "shuffle" => flashgate::queue::draw::places(seed, u32::try_from(joiners)?)
            .into_iter()
            .map(u64::from)
            .collect(),
        _ => (1..=joiners).collect(),
    };
    for v in visitors.iter().filter(|v| v.prequeue) {
        report.places_checked += 1;
        let expected = usize::try_from(v.join_number)
            .ok()
            .and_then(|n| places.get(n.checked_sub(1)?));
        if v.place.is_none() || v.place != expected.copied() {
            report.places_wrong += 1;
        }
    }
    Ok(report)
}
