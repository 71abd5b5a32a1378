//! `flashgate storm`: rehearse a sale. Mints a login token for each of `users` users, reads the
//! buy path from the sale's `button.js` (waiting for the opening if need be), then sends the
//! crowd from `connections` concurrent connections until `duration` has passed or `requests`
//! buys were sent, whichever comes first. Every user gets a turn before anyone goes again, and
//! users keep trying after they win, so a second unit to one user would show. Shares of the
//! requests come from bots (a few accounts hammering without solving any captcha) and go to
//! unknown products. For a `captcha: pow` sale each user's buy first fetches a challenge and
//! solves it; for `captcha: token`, with `--captcha-secret`, it mints a pass as the captcha
//! service would. It ends with the table of [`report::Report`].
//!
//! It only talks to the target given (tests and the demo use 127.0.0.1).

pub(crate) mod http;
pub mod queue;
pub mod report;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flashgate::ground::clock::now_ms;

use ::http::{Method, Uri};
use anyhow::{bail, Context};
use flashgate::admission::captcha::pow;
use flashgate::admission::login;
use flashgate::ground::signing::pass_token;
use flashgate::ground::Secret;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

use self::http::Http;
use report::{Header, Report, Tally};

/// What to send, where, how hard and for how long.
#[derive(Debug, Clone)]
pub struct Plan {
    /// `http://host:port` of the edge.
    pub target: String,
    /// HS256 key of the login service.
    pub login_secret: String,
    /// Distinct users.
    pub users: usize,
    /// Longest time the crowd is sent for.
    pub duration: Duration,
    /// Most buy requests sent.
    pub requests: u64,
    /// Concurrent connections.
    pub connections: usize,
    /// Share of requests from bots, 0 to 1.
    pub bots: f64,
    /// Share of requests for unknown products, 0 to 1.
    pub unknown: f64,
    /// The product on sale.
    pub product: u64,
    /// For `captcha: token` sales: the key to mint passes with.
    pub captcha_secret: Option<String>,
    /// Longest wait for the sale to open.
    pub wait: Duration,
    /// Draw the progress bar (on a terminal).
    pub progress: bool,
}

/// Shared by every worker.
struct Crowd {
    http: Http,
    base: String,
    plan: Plan,
    buy_path: String,
    captcha: String,
    user_tokens: Vec<String>,
    bot_tokens: Vec<String>,
    next: AtomicU64,
    next_user: AtomicU64,
    sent: AtomicU64,
    won: AtomicU64,
    stop: AtomicBool,
    deadline: Instant,
    /// Solving is CPU work: at most one solve per core at a time.
    solvers: tokio::sync::Semaphore,
}

/// Who sends one request.
enum Sender {
    User(usize),
    Bot(usize),
    Unknown(usize),
}

/// Login tokens for `uids`, signed with the login secret `secret`, valid for an hour.
pub(crate) fn mint(
    secret: &str,
    uids: impl Iterator<Item = String>,
) -> anyhow::Result<Vec<String>> {
    let secret = Secret::new(secret.as_bytes());
    let exp = now_ms() / 1000 + 3600;
    Ok(uids.map(|sub| login::mint(&secret, &sub, exp)).collect())
}

/// The sale state in `button.js`.
async fn sale_state(http: &Http, base: &str, product: u64) -> anyhow::Result<Value> {
    let uri: Uri = format!("{base}/sale/{product}/button.js").parse()?;
    let answer = http.send(Method::GET, uri, &[]).await?;
    if !answer.status.is_success() {
        bail!("{base}/sale/{product}/button.js answered {}", answer.status);
    }
    let script = std::str::from_utf8(&answer.body).context("button.js is not UTF-8")?;
    let state = flashgate::edge::button::state_of(script).context("no sale state in button.js")?;
    Ok(serde_json::from_str(state)?)
}

/// Run the storm described by `plan`.
pub async fn run(plan: Plan) -> anyhow::Result<Report> {
    let base = plan.target.trim_end_matches('/').to_string();
    let uri: Uri = base
        .parse()
        .context("--target must be a URL such as http://127.0.0.1:8080")?;
    if uri.scheme_str() != Some("http") || uri.host().is_none() {
        bail!("--target must be an http:// URL with a host, such as http://127.0.0.1:8080");
    }
    if plan.users == 0 || plan.connections == 0 {
        bail!("--users and --connections must be at least 1");
    }
    if !(0.0..=1.0).contains(&plan.bots)
        || !(0.0..=1.0).contains(&plan.unknown)
        || plan.bots + plan.unknown > 1.0
    {
        bail!("--bots and --unknown are shares between 0 and 1 adding up to at most 1");
    }
    let http = Http::new(plan.connections);

    // Wait for the opening, as the page would.
    let waited = Instant::now();
    let state = loop {
        let state = sale_state(&http, &base, plan.product).await?;
        if state["active"] == true {
            break state;
        }
        if state["ended"] == true {
            bail!("the sale of product {} has ended", plan.product);
        }
        if waited.elapsed() > plan.wait {
            bail!(
                "the sale of product {} did not open within {:?}",
                plan.product,
                plan.wait
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let buy_path = state["buy_path"]
        .as_str()
        .context("button.js gave no buy_path")?;
    let captcha = state["captcha"].as_str().unwrap_or("none").to_string();

    let bots = if plan.bots > 0.0 {
        (plan.users / 100).max(1)
    } else {
        0
    };
    let user_tokens = mint(
        &plan.login_secret,
        (1..=plan.users).map(|n| format!("storm-u{n}")),
    )?;
    let bot_tokens = mint(
        &plan.login_secret,
        (1..=bots).map(|n| format!("storm-bot{n}")),
    )?;
    let crowd = Arc::new(Crowd {
        http,
        base: base.clone(),
        buy_path: buy_path.to_string(),
        captcha: captcha.clone(),
        user_tokens,
        bot_tokens,
        next: AtomicU64::new(0),
        next_user: AtomicU64::new(0),
        sent: AtomicU64::new(0),
        won: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        deadline: Instant::now() + plan.duration,
        solvers: tokio::sync::Semaphore::new(
            std::thread::available_parallelism().map_or(1, |n| n.get()),
        ),
        plan: plan.clone(),
    });

    let bar = progress_bar(&plan);
    let started = Instant::now();
    let workers: Vec<_> = (0..plan.connections)
        .map(|_| tokio::spawn(worker(crowd.clone())))
        .collect();
    let ticker = {
        let (crowd, bar) = (crowd.clone(), bar.clone());
        tokio::spawn(async move {
            while !crowd.stop.load(Ordering::Relaxed) {
                let sent = crowd.sent.load(Ordering::Relaxed);
                let secs = started.elapsed().as_secs_f64().max(0.001);
                bar.set_position(started.elapsed().as_millis() as u64);
                bar.set_message(format!(
                    "{sent} buys, {:.0}/s, {} won",
                    sent as f64 / secs,
                    crowd.won.load(Ordering::Relaxed)
                ));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let mut tallies = Vec::with_capacity(workers.len());
    for w in workers {
        tallies.push(w.await.context("a storm worker failed")?);
    }
    let elapsed = started.elapsed();
    crowd.stop.store(true, Ordering::Relaxed);
    let _ = ticker.await;
    bar.finish_and_clear();
    let header = Header {
        target: base,
        product: plan.product,
        captcha,
        users: plan.users,
        bots,
        connections: plan.connections,
    };
    Ok(Report::merge(header, tallies, elapsed))
}

fn progress_bar(plan: &Plan) -> ProgressBar {
    if !plan.progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(
        Some(plan.duration.as_millis() as u64),
        ProgressDrawTarget::stderr(),
    );
    if let Ok(style) =
        ProgressStyle::with_template("storm {bar:40.magenta/white} {elapsed_precise} {msg}")
    {
        bar.set_style(style.progress_chars("█▉▊▋▌▍▎▏ "));
    }
    bar
}

/// Who sends request number `i` (deterministic: the shares hold over any long run).
fn sender(crowd: &Crowd, i: u64) -> Sender {
    // Spread i over [0, 1) by a multiplicative hash, so shares interleave.
    let r = (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64 / (1u64 << 53) as f64;
    if r < crowd.plan.unknown {
        Sender::Unknown(i as usize)
    } else if r < crowd.plan.unknown + crowd.plan.bots && !crowd.bot_tokens.is_empty() {
        Sender::Bot(i as usize % crowd.bot_tokens.len())
    } else {
        let n = crowd.next_user.fetch_add(1, Ordering::Relaxed);
        Sender::User(n as usize % crowd.user_tokens.len())
    }
}

async fn worker(crowd: Arc<Crowd>) -> Tally {
    let mut tally = Tally::default();
    loop {
        if Instant::now() >= crowd.deadline {
            return tally;
        }
        let i = crowd.next.fetch_add(1, Ordering::Relaxed);
        if i >= crowd.plan.requests {
            return tally;
        }
        let who = sender(&crowd, i);
        let bearer;
        let mut path = crowd.buy_path.clone();
        let mut captcha = None;
        match who {
            Sender::User(u) => {
                bearer = format!("Bearer {}", crowd.user_tokens[u]);
                captcha = match user_captcha(&crowd, &bearer, u, i, &mut tally).await {
                    Ok(c) => c,
                    Err(_) => {
                        tally.answer("challenge_failed", 0, Duration::ZERO);
                        continue;
                    }
                };
            }
            Sender::Bot(b) => bearer = format!("Bearer {}", crowd.bot_tokens[b]),
            Sender::Unknown(n) => {
                bearer = format!("Bearer {}", crowd.user_tokens[n % crowd.user_tokens.len()]);
                path = format!("/buy/{}/storm", 900_000_000 + n % 1000);
            }
        }
        let Ok(uri) = format!("{}{path}", crowd.base).parse::<Uri>() else {
            return tally;
        };
        let mut headers: Vec<(&'static str, &str)> = vec![("authorization", &bearer)];
        if let Some(c) = &captcha {
            headers.push(("x-captcha", c));
        }
        let sent_at = Instant::now();
        let answer = crowd.http.send(Method::POST, uri, &headers).await;
        let latency = sent_at.elapsed();
        crowd.sent.fetch_add(1, Ordering::Relaxed);
        match answer {
            Ok(a) if won(a.status) => {
                tally.answer("won", a.status.as_u16(), latency);
                crowd.won.fetch_add(1, Ordering::Relaxed);
                tally.wins.push(match who {
                    Sender::User(u) => u,
                    Sender::Bot(b) => crowd.user_tokens.len() + b,
                    Sender::Unknown(_) => usize::MAX,
                });
            }
            Ok(a) => tally.answer(outcome_of(&a.body), a.status.as_u16(), latency),
            Err(_) => tally.answer("connection_error", 0, latency),
        }
    }
}

/// The `X-Captcha` value user `u` sends with request `i`, fetching and solving a challenge for
/// a `pow` sale.
async fn user_captcha(
    crowd: &Crowd,
    bearer: &str,
    u: usize,
    i: u64,
    tally: &mut Tally,
) -> anyhow::Result<Option<String>> {
    match crowd.captcha.as_str() {
        "pow" => {
            let uri: Uri = format!(
                "{}/api/challenge?product={}",
                crowd.base, crowd.plan.product
            )
            .parse()?;
            let answer = crowd
                .http
                .send(Method::GET, uri, &[("authorization", bearer)])
                .await?;
            let body: Value = serde_json::from_slice(&answer.body)?;
            let challenge = body["challenge"]
                .as_str()
                .context("no challenge")?
                .to_string();
            let bits = body["difficulty"].as_u64().context("no difficulty")? as u8;
            let _core = crowd.solvers.acquire().await?;
            let started = Instant::now();
            let text = challenge.clone();
            let limit = 1u64 << (u32::from(bits) + 8).min(40);
            let nonce = tokio::task::spawn_blocking(move || pow::solve(&text, bits, limit))
                .await?
                .context("no solution")?;
            tally.challenges += 1;
            tally
                .solve_us
                .push(u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX));
            Ok(Some(format!("{challenge}.{nonce}")))
        }
        "token" => Ok(crowd.plan.captcha_secret.as_ref().map(|secret| {
            let key = Secret::new(secret.as_bytes().to_vec());
            let uid = format!("storm-u{}", u + 1);
            pass_token(
                &key,
                &uid,
                crowd.plan.product,
                now_ms() + 30_000,
                &format!("storm{i}"),
            )
        })),
        _ => Ok(None),
    }
}

/// Whether a buy's answer is a win: the origin's `2xx`, not the edge's `202 pending` (a unit
/// held whose order is not known yet; counted by its outcome, `pending`).
pub(crate) fn won(status: ::http::StatusCode) -> bool {
    status.is_success() && status != ::http::StatusCode::ACCEPTED
}

/// The outcome name of an edge-made answer (`other` when the body is not one).
fn outcome_of(body: &[u8]) -> &'static str {
    let name = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["outcome"].as_str().map(str::to_string));
    name.and_then(|n| {
        flashgate::ground::Outcome::ALL
            .iter()
            .map(|o| o.name())
            .find(|known| *known == n)
    })
    .unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_read_from_bodies() {
        assert_eq!(outcome_of(br#"{"outcome":"sold_out"}"#), "sold_out");
        assert_eq!(outcome_of(br#"{"outcome":"nonsense"}"#), "other");
        assert_eq!(outcome_of(b"<html>"), "other");
    }
}
