//! What a storm counts and how it is shown: per-worker tallies merged into one [`Report`], the
//! closing table (requests, rate, p50/p99, count per outcome, winners, users who won twice) and
//! the same as JSON.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::time::Duration;

use serde::Serialize;

/// What one worker saw.
#[derive(Default)]
pub struct Tally {
    /// Answers per outcome name, with the status they came with.
    pub outcomes: HashMap<&'static str, (u16, u64)>,
    /// Buy latencies in microseconds.
    pub latencies_us: Vec<u32>,
    /// Index of the user of every win.
    pub wins: Vec<usize>,
    /// Challenges fetched and solved.
    pub challenges: u64,
    /// Time spent solving them, microseconds each.
    pub solve_us: Vec<u32>,
}

impl Tally {
    /// Count one answer.
    pub fn answer(&mut self, outcome: &'static str, status: u16, latency: Duration) {
        let entry = self.outcomes.entry(outcome).or_insert((status, 0));
        entry.1 += 1;
        self.latencies_us
            .push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
    }
}

/// The outcome of a storm.
#[derive(Debug, Serialize)]
pub struct Report {
    /// What was stormed, and with what crowd (flattened into the JSON).
    #[serde(flatten)]
    pub header: Header,
    /// Buy requests answered (challenges not included).
    pub requests: u64,
    /// Seconds from the first buy to the last answer.
    pub elapsed_s: f64,
    /// Buy requests per second.
    pub rps: f64,
    /// Median buy latency, ms.
    pub p50_ms: f64,
    /// 99th percentile buy latency, ms.
    pub p99_ms: f64,
    /// Count and status per outcome.
    pub outcomes: BTreeMap<String, OutcomeCount>,
    /// Users (and bots) who won.
    pub winners: u64,
    /// Users who won more than once: must be 0.
    pub won_twice: u64,
    /// Challenges fetched and solved.
    pub challenges: u64,
    /// Median time to solve one, ms.
    pub solve_p50_ms: f64,
}

/// One row of the outcome table.
#[derive(Debug, Serialize, Clone, Copy)]
pub struct OutcomeCount {
    /// HTTP status.
    pub status: u16,
    /// Answers.
    pub count: u64,
}

/// Everything but the merged tallies.
#[derive(Debug, Serialize)]
pub struct Header {
    /// Target URL.
    pub target: String,
    /// Product.
    pub product: u64,
    /// Captcha mode.
    pub captcha: String,
    /// Distinct users.
    pub users: usize,
    /// Bot accounts.
    pub bots: usize,
    /// Connections.
    pub connections: usize,
}

fn percentile_ms(sorted_us: &[u32], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted_us.len() as f64).ceil() as usize).clamp(1, sorted_us.len());
    f64::from(sorted_us[rank - 1]) / 1000.0
}

impl Report {
    /// Merge the workers' tallies.
    pub fn merge(header: Header, tallies: Vec<Tally>, elapsed: Duration) -> Report {
        let mut outcomes: BTreeMap<String, OutcomeCount> = BTreeMap::new();
        let mut latencies = Vec::new();
        let mut solves = Vec::new();
        let mut wins: HashMap<usize, u64> = HashMap::new();
        let mut challenges = 0;
        for t in tallies {
            for (name, (status, count)) in t.outcomes {
                let row = outcomes
                    .entry(name.to_string())
                    .or_insert(OutcomeCount { status, count: 0 });
                row.count += count;
            }
            latencies.extend(t.latencies_us);
            solves.extend(t.solve_us);
            for user in t.wins {
                *wins.entry(user).or_default() += 1;
            }
            challenges += t.challenges;
        }
        latencies.sort_unstable();
        solves.sort_unstable();
        let requests = latencies.len() as u64;
        let secs = elapsed.as_secs_f64().max(1e-9);
        Report {
            header,
            requests,
            elapsed_s: secs,
            rps: requests as f64 / secs,
            p50_ms: percentile_ms(&latencies, 0.50),
            p99_ms: percentile_ms(&latencies, 0.99),
            outcomes,
            winners: wins.len() as u64,
            won_twice: wins.values().filter(|n| **n > 1).count() as u64,
            challenges,
            solve_p50_ms: percentile_ms(&solves, 0.50),
        }
    }

    /// Answers with outcome `name`.
    pub fn count(&self, name: &str) -> u64 {
        self.outcomes.get(name).map(|o| o.count).unwrap_or(0)
    }

    /// The closing table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let h = &self.header;
        let _ = writeln!(
            s,
            "storm: {} product {} (captcha {}), {} users + {} bots, {} connections",
            h.target, h.product, h.captcha, h.users, h.bots, h.connections
        );
        let row = |s: &mut String, name: &str, value: String| {
            let _ = writeln!(s, "  {name:<22}{value:>12}");
        };
        row(&mut s, "requests", group(self.requests));
        row(&mut s, "duration", format!("{:.2} s", self.elapsed_s));
        row(&mut s, "rps", group(self.rps.round() as u64));
        row(&mut s, "latency p50", format!("{:.2} ms", self.p50_ms));
        row(&mut s, "latency p99", format!("{:.2} ms", self.p99_ms));
        if self.challenges > 0 {
            row(&mut s, "challenges solved", group(self.challenges));
            row(&mut s, "solve p50", format!("{:.2} ms", self.solve_p50_ms));
        }
        let _ = writeln!(s, "  {:<22}{:>12}{:>8}", "outcome", "count", "status");
        let mut rows: Vec<_> = self.outcomes.iter().collect();
        rows.sort_by_key(|(_, o)| std::cmp::Reverse(o.count));
        for (name, o) in rows {
            let _ = writeln!(s, "  {name:<22}{:>12}{:>8}", group(o.count), o.status);
        }
        row(&mut s, "winners", group(self.winners));
        let _ = writeln!(
            s,
            "  {:<22}{:>12}   (must be 0)",
            "users who won twice",
            group(self.won_twice)
        );
        s
    }
}

/// `1234567` as `1,234,567`.
fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            target: "http://127.0.0.1:1".into(),
            product: 42,
            captcha: "none".into(),
            users: 3,
            bots: 1,
            connections: 2,
        }
    }

    #[test]
    fn merges_counts_percentiles_and_double_winners() {
        let mut a = Tally::default();
        let mut b = Tally::default();
        for ms in 1..=100u64 {
            let t = if ms % 2 == 0 { &mut a } else { &mut b };
            t.answer("sold_out", 410, Duration::from_millis(ms));
        }
        a.answer("won", 200, Duration::from_millis(1));
        a.wins.push(7);
        b.answer("won", 200, Duration::from_millis(1));
        b.wins.push(7);
        b.answer("won", 200, Duration::from_millis(1));
        b.wins.push(8);
        let r = Report::merge(header(), vec![a, b], Duration::from_secs(2));
        assert_eq!(r.requests, 103);
        assert_eq!(r.count("sold_out"), 100);
        assert_eq!(r.count("won"), 3);
        assert_eq!((r.winners, r.won_twice), (2, 1), "user 7 won twice");
        assert_eq!(r.p50_ms, 49.0);
        assert_eq!(r.p99_ms, 99.0);
        assert!((r.rps - 51.5).abs() < 1e-9);
        let table = r.table();
        assert!(table.contains("users who won twice"), "{table}");
        assert!(
            table.contains("sold_out                       100     410"),
            "{table}"
        );
    }

    #[test]
    fn groups_thousands() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1,000");
        assert_eq!(group(1234567), "1,234,567");
    }
}
