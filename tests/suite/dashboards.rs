//! The Prometheus and Grafana files under conf/ stay true to what the binaries export: promtool
//! accepts the scrape config, the rules and their unit tests, and every metric the rules and
//! the dashboard query is one that flashgate or flashgate-orders really exports.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use flashgate::ground::metrics::Metrics;
use flashgate::orders::metrics::OrderMetrics;

fn conf(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("conf")
        .join(path)
        .to_string_lossy()
        .into_owned()
}

fn promtool(args: &[&str]) {
    let out = Command::new("promtool")
        .args(args)
        .output()
        .expect("promtool is needed (apt-get install prometheus; .ci/run installs it)");
    assert!(
        out.status.success(),
        "promtool {args:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn promtool_accepts_config_rules_and_rule_tests() {
    promtool(&["check", "config", &conf("prometheus/prometheus.yml")]);
    promtool(&[
        "test",
        "rules",
        &conf("prometheus/flashgate.rules.test.yml"),
    ]);
}

/// Metric names (`flashgate_...`, histogram suffixes removed) mentioned in `text`.
fn referenced(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("flashgate_") {
        let start = i + at;
        let preceded =
            start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b':');
        let end = text[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(text.len(), |e| start + e);
        if !preceded {
            let name = &text[start..end];
            let base = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name);
            names.insert(base.to_string());
        }
        i = end;
    }
    names
}

fn exported() -> BTreeSet<String> {
    let edge = Metrics::new().unwrap();
    edge.set_remaining(1, 1);
    let limit = edge.limit_counters("x");
    limit.dry_run.inc();
    limit.refused.inc();
    edge.set_difficulty(1, 12);
    edge.queue_sale(1);
    // The shop's series exist once a route, a pool and a server are configured: one of each.
    let shop = &edge.shop;
    shop.route_requests.with_label_values(&["r", "2xx"]).inc();
    shop.route_seconds.with_label_values(&["r"]).observe(0.001);
    shop.server_requests
        .with_label_values(&["u", "127.0.0.1:1", "2xx"])
        .inc();
    shop.server_healthy
        .with_label_values(&["u", "127.0.0.1:1"])
        .set(1);
    shop.ejections
        .with_label_values(&["u", "127.0.0.1:1"])
        .inc();
    let orders = OrderMetrics::new().unwrap();
    orders.order("forward", "created");
    orders.unauthorized("forged");
    orders.reconciled(1, &flashgate::orders::model::Reconciled::default());
    let mut text = String::from_utf8(edge.render()).unwrap();
    text.push_str(&String::from_utf8(orders.render()).unwrap());
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[test]
fn rules_and_dashboard_query_only_exported_metrics() {
    let exported = exported();
    for file in ["prometheus/flashgate.rules.yml", "grafana/flashgate.json"] {
        let text = std::fs::read_to_string(conf(file)).unwrap();
        let used = referenced(&text);
        assert!(!used.is_empty(), "{file} queries nothing");
        let unknown: Vec<_> = used.difference(&exported).collect();
        assert!(
            unknown.is_empty(),
            "{file} queries metrics nobody exports: {unknown:?}"
        );
    }
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(conf("grafana/flashgate.json")).unwrap())
            .unwrap();
    assert!(dashboard["panels"].as_array().is_some_and(|p| p.len() >= 5));
}
