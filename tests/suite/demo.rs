//! `flashgate demo` end to end: one command starts the edge and an order backend (the real
//! `flashgate-orders` on SQLite with a private redis-server, or the in-process stand-in), runs a
//! sale and a storm, prints the table, the orders total and the URLs, and exits by itself,
//! leaving nothing listening.

use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn demo_with_the_stand_in_origin() {
    let (stdout, stderr) = demo(&["--stand-in"]);
    assert!(stderr.contains("stand-in order backend"), "{stderr}");
    assert!(
        stdout.contains("orders total: 30 (stock 30; 30 with a valid edge signature)"),
        "{stdout}"
    );
}

#[test]
fn demo_with_flashgate_orders_on_sqlite() {
    // cargo builds flashgate-orders next to flashgate for the tests; redis-server is installed
    // for the store tests.
    assert!(std::path::Path::new(env!("CARGO_BIN_EXE_flashgate-orders")).is_file());
    let (stdout, stderr) = demo(&[]);
    assert!(
        stderr.contains("flashgate-orders on 127.0.0.1:"),
        "{stderr}"
    );
    assert!(
        stdout.contains(
            "orders total: 30 (stock 30; in flashgate-orders' SQLite database: \
             30 pending payment, 0 paid)"
        ),
        "{stdout}"
    );
}

/// Run a demo of 30 units among 300 users with `extra` flags and check what every demo prints;
/// (stdout, stderr).
fn demo(extra: &[&str]) -> (String, String) {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_flashgate"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["demo", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .args(["--users", "300", "--stock", "30", "--duration", "3s"])
        .args(["--difficulty", "8"])
        .args(extra)
        .output()
        .expect("run flashgate demo");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
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
    assert_eq!(
        line("won").split_whitespace().nth(1),
        Some("30"),
        "{stdout}"
    );
    assert!(line("users who won twice").contains(" 0 "), "{stdout}");
    assert!(
        line("challenges solved").len() > 20,
        "the demo sale asks for a proof of work"
    );
    let page = line("live page:");
    let url = page.split_whitespace().nth(2).unwrap().to_string();
    assert!(url.starts_with("http://127.0.0.1:") && url.contains("/?product=42#token="));
    assert!(line("metrics:").ends_with("/metrics"));
    // The rest of the shop, behind the edge's route.
    assert!(line("shop page:").contains("/shop/42 (200:"), "{stdout}");
    // Nothing is left listening.
    let addr = url.trim_start_matches("http://").split('/').next().unwrap();
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "the edge on {addr} was stopped"
    );
    (stdout, stderr)
}
