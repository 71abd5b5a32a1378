//! `flashgate demo` end to end: one command starts the edge and a stand-in order backend, runs
//! a sale and a storm, prints the table, the orders total and the URLs, and exits by itself,
//! leaving nothing listening.

use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn demo_runs_a_whole_sale_and_stops_by_itself() {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_flashgate"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["demo", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .args([
            "--users",
            "300",
            "--stock",
            "30",
            "--duration",
            "3s",
            "--difficulty",
            "8",
        ])
        .output()
        .expect("run flashgate demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the demo ends by itself"
    );
    let line = |start: &str| {
        stdout
            .lines()
            .find(|l| l.trim_start().starts_with(start))
            .unwrap_or_else(|| panic!("no {start:?} line in:\n{stdout}"))
            .to_string()
    };
    assert!(
        line("won").split_whitespace().nth(1) == Some("30"),
        "{stdout}"
    );
    assert!(line("users who won twice").contains(" 0 "), "{stdout}");
    assert!(
        line("challenges solved").len() > 20,
        "the demo sale asks for a proof of work"
    );
    assert!(
        line("orders total: 30 (stock 30; 30 with a valid edge signature)").len() > 10,
        "{stdout}"
    );
    let page = line("live page:");
    let url = page.split_whitespace().nth(2).unwrap();
    assert!(url.starts_with("http://127.0.0.1:") && url.contains("/?product=42#token="));
    let metrics = line("metrics:");
    assert!(metrics.ends_with("/metrics"), "{metrics}");
    // Nothing is left listening.
    let addr = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    assert!(
        std::net::TcpStream::connect(&addr).is_err(),
        "the edge on {addr} was stopped"
    );
}
