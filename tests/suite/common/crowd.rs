//! A paced storm for fault tests: a few concurrent clients buying for a crowd that arrives
//! steadily, so a sale lasts long enough for a fault to strike in the middle of it. Every answer
//! is recorded — status, outcome, whether it said when to retry — for the test to judge. Bounded
//! in requests and in time; loopback only.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::token;

/// One answer the crowd got.
#[derive(Debug, Clone)]
pub struct Answer {
    /// When the answer came, since the storm started.
    pub at: Duration,
    pub uid: String,
    pub status: u16,
    pub outcome: String,
    pub retry_after: bool,
    /// The status URL the answer named (`202 pending`, `409 duplicate`).
    pub status_url: Option<String>,
}

/// How the crowd behaves.
#[derive(Debug, Clone)]
pub struct Pace {
    /// Distinct users in all.
    pub users: usize,
    /// Users arriving per second (from 1 at the start up to `users`).
    pub arrivals_per_s: f64,
    /// Concurrent clients.
    pub workers: usize,
    /// Pause of each client between two requests.
    pub pause: Duration,
    /// The storm stops after this long at most.
    pub max_duration: Duration,
    /// The storm stops after this many requests at most.
    pub max_requests: usize,
}

/// A storm in progress.
pub struct Crowd {
    stop: Arc<AtomicBool>,
    answers: Arc<Mutex<Vec<Answer>>>,
    workers: Vec<tokio::task::JoinHandle<()>>,
    started: Instant,
}

impl Crowd {
    /// Start buying at `url` as users `{prefix}0`, `{prefix}1`, …
    pub fn start(url: &str, prefix: &str, pace: Pace) -> Crowd {
        let stop = Arc::new(AtomicBool::new(false));
        let answers = Arc::new(Mutex::new(Vec::new()));
        let sent = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        let workers = (0..pace.workers)
            .map(|_| {
                let (stop, answers, sent) = (stop.clone(), answers.clone(), sent.clone());
                let (client, url, prefix, pace) = (
                    client.clone(),
                    url.to_string(),
                    prefix.to_string(),
                    pace.clone(),
                );
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) && started.elapsed() < pace.max_duration {
                        let n = sent.fetch_add(1, Ordering::Relaxed);
                        if n >= pace.max_requests {
                            break;
                        }
                        let arrived = (1.0 + started.elapsed().as_secs_f64() * pace.arrivals_per_s)
                            .min(pace.users as f64) as usize;
                        // A user drawn at random among those arrived (a multiplicative hash of
                        // the request number): `n % arrived` would alias with the arrival rate
                        // and keep hitting the same few users.
                        let draw = (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
                        let uid = format!("{prefix}{}", draw % arrived.max(1) as u64);
                        let mut answer = buy(&client, &url, &uid).await;
                        answer.at = started.elapsed();
                        answers.lock().unwrap().push(answer);
                        tokio::time::sleep(pace.pause).await;
                    }
                })
            })
            .collect();
        Crowd {
            stop,
            answers,
            workers,
            started,
        }
    }

    /// How long the storm has been running.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The answers so far.
    pub fn answers(&self) -> Vec<Answer> {
        self.answers.lock().unwrap().clone()
    }

    /// Stop (each client finishes its request in flight) and return every answer.
    pub async fn stop(self) -> Vec<Answer> {
        self.stop.store(true, Ordering::Relaxed);
        self.finish().await
    }

    /// Let the storm run out its time or its requests, and return every answer.
    pub async fn finish(self) -> Vec<Answer> {
        for w in self.workers {
            w.await.unwrap();
        }
        let answers = self.answers.lock().unwrap().clone();
        answers
    }
}

async fn buy(client: &reqwest::Client, url: &str, uid: &str) -> Answer {
    let sent = client.post(url).bearer_auth(token(uid)).send().await;
    let resp = match sent {
        Ok(resp) => resp,
        // No answer at all (status 0): the judge counts these as failures.
        Err(e) => {
            let why = if e.is_connect() {
                "no connection"
            } else {
                "no answer"
            };
            return Answer {
                at: Duration::ZERO,
                uid: uid.to_string(),
                status: 0,
                outcome: why.to_string(),
                retry_after: false,
                status_url: None,
            };
        }
    };
    let status = resp.status().as_u16();
    let retry_after = resp.headers().contains_key("retry-after");
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    Answer {
        at: Duration::ZERO,
        uid: uid.to_string(),
        status,
        outcome: body["outcome"].as_str().unwrap_or("").to_string(),
        retry_after,
        status_url: body["status"].as_str().map(str::to_string),
    }
}
