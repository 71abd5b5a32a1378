//! The access log: one JSON line per request of the routes `access_log.routes` names, written
//! off the hot path.
//!
//! ```json
//! {"time":"2026-11-22T12:00:00.123Z","route":"buy","outcome":"won","status":201,
//!  "latency_ms":1.234,"client_ip":"203.0.113.7","uid":"alice","reservation":"42-1763-7"}
//! ```
//!
//! A request's line is handed to a bounded channel (`access_log.buffer` lines) in Pingora's
//! logging phase, after its answer is sent; a thread of its own serialises and writes the lines
//! (to a file opened for appending, or stdout) and flushes whenever the channel runs dry, so a
//! burst is written in batches. The request never waits for the disk: when the channel is full
//! (the writer is behind, the disk is slow or a pipe is not read) the line is dropped and counted
//! in `flashgate_access_log_dropped_total`. No line carries a token: not the login token, not
//! the buy path (whose last segment is the sale's secret), not a captcha.

use std::fs::OpenOptions;
use std::io::{self, BufWriter, Write};
use std::net::IpAddr;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::time::{Duration, UNIX_EPOCH};

use prometheus::IntCounter;
use serde::Serialize;

use crate::config::{AccessLogSettings, LogRoute, LogTarget};
use crate::ground::metrics::Route;
use crate::ground::Outcome;

/// Why the access log could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum AccessLogError {
    /// The file could not be opened for appending.
    #[error("access_log.path {path}: {source}")]
    Open {
        /// The file.
        path: String,
        /// What the operating system said.
        source: io::Error,
    },
    /// The writer thread could not be started.
    #[error("access log writer: {0}")]
    Thread(io::Error),
}

/// One request, as the proxy saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// When the answer was done, ms since the epoch (`crate::ground::clock::now_ms`).
    pub time_ms: u64,
    /// The route.
    pub route: Route,
    /// What the edge made of it.
    pub outcome: Outcome,
    /// The status sent (0 if none was).
    pub status: u16,
    /// From the request's arrival to the end of its answer, in microseconds.
    pub latency_us: u64,
    /// The client, as resolved (see `admission::client_ip`).
    pub client_ip: IpAddr,
    /// The logged-in user, if the request got as far as the login check.
    pub uid: Option<String>,
    /// The reservation of a winner.
    pub reservation: Option<String>,
}

/// The JSON form of a [`Line`].
#[derive(Serialize)]
struct Json<'a> {
    time: String,
    route: &'static str,
    outcome: &'static str,
    status: u16,
    latency_ms: f64,
    client_ip: IpAddr,
    uid: Option<&'a str>,
    reservation: Option<&'a str>,
}

impl Line {
    fn write_json(&self, out: &mut impl Write) -> io::Result<()> {
        let time = UNIX_EPOCH + Duration::from_millis(self.time_ms);
        let json = Json {
            time: humantime::format_rfc3339_millis(time).to_string(),
            route: self.route.name(),
            outcome: self.outcome.name(),
            status: self.status,
            latency_ms: self.latency_us as f64 / 1000.0,
            client_ip: self.client_ip,
            uid: self.uid.as_deref(),
            reservation: self.reservation.as_deref(),
        };
        serde_json::to_writer(&mut *out, &json)?;
        out.write_all(b"\n")
    }
}

/// The access log of one gateway: which routes it logs, and the channel to its writer.
pub struct AccessLog {
    routes: [bool; Route::ALL.len()],
    lines: SyncSender<Line>,
    dropped: IntCounter,
}

fn route_of(r: LogRoute) -> Route {
    match r {
        LogRoute::Static => Route::Static,
        LogRoute::Button => Route::Button,
        LogRoute::Challenge => Route::Challenge,
        LogRoute::Buy => Route::Buy,
        LogRoute::Shop => Route::Shop,
        LogRoute::Other => Route::Other,
    }
}

impl AccessLog {
    /// Open the log `settings` describe and start its writer thread; dropped lines are counted
    /// in `dropped`.
    pub fn open(settings: &AccessLogSettings, dropped: IntCounter) -> Result<Self, AccessLogError> {
        let out: Box<dyn Write + Send> = match &settings.target {
            LogTarget::Stdout => Box::new(io::stdout()),
            LogTarget::File(path) => Box::new(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|source| AccessLogError::Open {
                        path: path.display().to_string(),
                        source,
                    })?,
            ),
        };
        let (lines, rx) = sync_channel(settings.buffer);
        std::thread::Builder::new()
            .name("flashgate-access-log".to_string())
            .spawn(move || write_lines(rx, BufWriter::with_capacity(64 * 1024, out)))
            .map_err(AccessLogError::Thread)?;
        let mut routes = [false; Route::ALL.len()];
        for r in &settings.routes {
            routes[route_of(*r) as usize] = true;
        }
        Ok(AccessLog {
            routes,
            lines,
            dropped,
        })
    }

    /// Whether requests of `route` are logged.
    pub fn wants(&self, route: Route) -> bool {
        self.routes[route as usize]
    }

    /// Hand `line` to the writer, or count it dropped if the writer is behind. Never waits.
    pub fn record(&self, line: Line) {
        match self.lines.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => self.dropped.inc(),
        }
    }
}

/// The writer thread: every line that arrives, flushed whenever none is waiting. Ends when the
/// gateway (every sender) is gone.
fn write_lines(rx: Receiver<Line>, mut out: BufWriter<Box<dyn Write + Send>>) {
    let mut failed = false;
    while let Ok(first) = rx.recv() {
        let mut line = Some(first);
        while let Some(l) = line {
            if let Err(e) = l.write_json(&mut out) {
                report(&mut failed, &e);
            }
            line = rx.try_recv().ok();
        }
        if let Err(e) = out.flush() {
            report(&mut failed, &e);
        }
    }
    let _ = out.flush();
}

/// A failing log is reported once, not per line; the lines are lost, requests go on.
fn report(failed: &mut bool, e: &io::Error) {
    if !*failed {
        *failed = true;
        tracing::error!("the access log cannot be written: {e}; its lines are lost until it can");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line() -> Line {
        Line {
            time_ms: 1_763_812_800_123,
            route: Route::Buy,
            outcome: Outcome::Won,
            status: 201,
            latency_us: 1234,
            client_ip: "203.0.113.7".parse().unwrap(),
            uid: Some("jos\u{e9} \"q\"".to_string()),
            reservation: Some("42-1-7".to_string()),
        }
    }

    #[test]
    fn a_line_is_one_json_object() {
        let mut out = Vec::new();
        line().write_json(&mut out).unwrap();
        assert_eq!(out.last(), Some(&b'\n'));
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["time"], "2025-11-22T12:00:00.123Z");
        assert_eq!(v["route"], "buy");
        assert_eq!(v["outcome"], "won");
        assert_eq!(v["status"], 201);
        assert_eq!(v["latency_ms"], 1.234);
        assert_eq!(v["client_ip"], "203.0.113.7");
        assert_eq!(v["uid"], "jos\u{e9} \"q\"");
        assert_eq!(v["reservation"], "42-1-7");
        let mut anonymous = line();
        anonymous.uid = None;
        anonymous.reservation = None;
        let mut out = Vec::new();
        anonymous.write_json(&mut out).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert!(v["uid"].is_null() && v["reservation"].is_null());
    }

    #[test]
    fn a_full_channel_drops_and_counts_instead_of_waiting() {
        // A log nobody writes: a channel of two lines whose receiver is held, not read.
        let (lines, rx) = sync_channel(2);
        let dropped = IntCounter::new("d", "d").unwrap();
        let log = AccessLog {
            routes: [true; Route::ALL.len()],
            lines,
            dropped: dropped.clone(),
        };
        for _ in 0..5 {
            log.record(line());
        }
        assert_eq!(dropped.get(), 3);
        assert_eq!(rx.try_iter().count(), 2);
    }

    #[test]
    fn only_the_routes_named_are_logged() {
        let dir = tempfile::tempdir().unwrap();
        let settings = AccessLogSettings {
            target: LogTarget::File(dir.path().join("access.log")),
            routes: vec![LogRoute::Buy, LogRoute::Challenge],
            buffer: 16,
        };
        let log = AccessLog::open(&settings, IntCounter::new("d", "d").unwrap()).unwrap();
        assert!(log.wants(Route::Buy) && log.wants(Route::Challenge));
        assert!(!log.wants(Route::Static) && !log.wants(Route::Button) && !log.wants(Route::Other));
    }
}
