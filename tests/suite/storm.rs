//! `flashgate storm` against a real edge and a recording origin: the crowd takes exactly the
//! stock, nobody wins twice, the table says so; and on a proof-of-work sale the storm solves
//! the challenges while its bots are turned away.

use crate::common::*;
use serde_json::Value;

fn sale(stock: u64, captcha: &str) -> String {
    format!(
        "  - {{ product: 42, stock: {stock}, starts_at: '{}', ends_at: '{}', captcha: {captcha} }}",
        at(-60),
        at(3600)
    )
}

const LIMITS: &str = "  - { name: per-uid, key: uid, requests: 5, per: 10s, expected_keys: 10000 }";

/// Run the storm; (exit status, table, report).
fn storm(edge: &Edge, args: &[&str]) -> (bool, String, Value) {
    let json = edge.dir.path().join("storm.json");
    let out = flashgate(
        &[
            &[
                "storm",
                "--target",
                &edge.base,
                "--login-secret",
                LOGIN_SECRET,
            ],
            args,
            &["--json", &json.to_string_lossy()],
        ]
        .concat(),
    );
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{table}{}", String::from_utf8_lossy(&out.stderr));
    let report =
        serde_json::from_slice(&std::fs::read(&json).unwrap_or_default()).unwrap_or(Value::Null);
    (out.status.success(), table, report)
}

fn count(report: &Value, outcome: &str) -> u64 {
    report["outcomes"][outcome]["count"].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_users_take_exactly_fifty_units() {
    let origin = Origin::start().await;
    let edge = edge(Setup {
        store: "{ kind: memory }",
        origin: origin.addr,
        sales: &sale(50, "none"),
        limits: LIMITS,
        trusted: "[]",
        blocklist: "",
    })
    .await;
    let (ok, table, report) = storm(
        &edge,
        &[
            "--users",
            "500",
            "--duration",
            "3s",
            "--requests",
            "20000",
            "--connections",
            "32",
        ],
    );
    assert!(ok, "storm failed:\n{table}");
    assert_eq!(count(&report, "won"), 50, "{table}");
    assert_eq!(report["winners"], 50, "{table}");
    assert_eq!(report["won_twice"], 0, "{table}");
    assert!(count(&report, "sold_out") > 0, "{table}");
    assert!(count(&report, "unknown_product") > 0, "{table}");
    assert_eq!(report["outcomes"]["sold_out"]["status"], 410);
    let requests = report["requests"].as_u64().unwrap();
    // A storm, whatever the machine's load: far more requests than winners, within the bound.
    assert!(requests > 100 && requests <= 20000, "{requests}");
    for line in ["requests", "rps", "latency p50", "latency p99", "winners"] {
        assert!(table.contains(line), "the table shows {line}:\n{table}");
    }
    let twice = table
        .lines()
        .find(|l| l.contains("users who won twice"))
        .unwrap();
    assert!(twice.contains(" 0 "), "{twice}");
    // The origin agrees: 50 orders, 50 different users.
    let forwards = origin.forwards();
    assert_eq!(forwards.len(), 50);
    let users: std::collections::HashSet<_> = forwards
        .iter()
        .map(|f| f.header("x-flashgate-uid"))
        .collect();
    assert_eq!(users.len(), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_pow_sale_the_crowd_solves_challenges_and_bots_are_refused() {
    let origin = Origin::start().await;
    let edge = edge_with(
        Setup {
            store: "{ kind: memory }",
            origin: origin.addr,
            sales: &sale(20, "pow"),
            limits: LIMITS,
            trusted: "[]",
            blocklist: "",
        },
        "captcha: { difficulty: 8 }",
    )
    .await;
    let (ok, table, report) = storm(
        &edge,
        &[
            "--users",
            "100",
            "--duration",
            "3s",
            "--requests",
            "3000",
            "--bots",
            "0.2",
        ],
    );
    assert!(ok, "{table}");
    assert_eq!(report["captcha"], "pow");
    assert_eq!(count(&report, "won"), 20, "{table}");
    assert_eq!(report["won_twice"], 0);
    assert!(report["challenges"].as_u64().unwrap() >= 20, "{table}");
    assert!(
        count(&report, "captcha_required") > 0,
        "bots solve nothing: {table}"
    );
    assert!(table.contains("challenges solved"), "{table}");
    assert_eq!(origin.forwards().len(), 20);
}

#[test]
fn storm_refuses_a_target_that_is_not_http() {
    let out = flashgate(&[
        "storm",
        "--target",
        "ftp://x",
        "--login-secret",
        LOGIN_SECRET,
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("http://"));
}
