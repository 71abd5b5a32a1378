//! The configuration file (`config::Config::parse`) and the files and values it names: any
//! text is read without a panic, and every error names the file it is about and a line and
//! column that lie within that file's text — the configuration itself, its `products_file`,
//! the blocklist file (`admission::blocklist`). A blocklist blocks the users it lists; the
//! `${ENV}` expansion gives back any text whose `$` are doubled; an id range is exactly two
//! decimal ids in order.
//!
//! Texts are random, YAML-shaped, and a valid file with a few random edits. The edits never
//! touch the line of `origin.url`: `Config::parse` resolves the origin's host name, and a test
//! must not send the machine's resolver a stream of made-up names.

use std::collections::HashMap;
use std::path::Path;

use flashgate::admission::blocklist::Blocklist;
use flashgate::config::{expand_env, Config, ConfigError, Environment, Expanded, IdRange};
use proptest::prelude::*;

use super::strategies::hostile_text;

struct Env(HashMap<&'static str, &'static str>);

impl Environment for Env {
    fn var(&self, name: &str) -> Option<String> {
        self.0.get(name).map(|v| v.to_string())
    }
}

fn env() -> Env {
    Env(HashMap::from([
        ("LOGIN", "login-secret-login-secret-login-secret-0001"),
        ("EDGE", "edge-secret-edge-secret-edge-secret-edge-0002"),
        ("SHORT", "short"),
    ]))
}

const URL_LINE: &str = "  url: http://127.0.0.1:8081\n";

/// A valid file that touches most sections.
const GOOD: &str = "\
listen: 127.0.0.1:8080
admin_listen: 127.0.0.1:9090
threads: 2
secrets:
  login: ${LOGIN}
  edge: ${EDGE}
trusted_proxies: [127.0.0.1/32, \"10.0.0.0/8\", \"::1\"]
origin:
  url: http://127.0.0.1:8081
  path: /orders
  timeout: 5s
  settle_after: 60s
store:
  kind: memory
  fsync: everysec
catalog:
  products: [1-1000, 5000]
  false_positive_rate: 0.001
sales:
  - product: 42
    stock: 500
    starts_at: 2026-11-22T12:00:00Z
    ends_at: 2026-11-22T13:00:00Z
    captcha: pow
  - { product: 7, stock: 1, starts_at: '2026-11-22T12:00:00Z', ends_at: '2026-11-23T12:00:00Z' }
limits:
  - { name: per-uid, key: uid, requests: 5, per: 10s }
  - name: per-ip
    key: ip
    requests: 50
    per: 1m 30s
    dry_run: true
allowlist_uids: [ops, 7]
sold_out_hint: 1s
rate_limit_headers: draft
captcha:
  difficulty: 16
  max_difficulty: 20
  challenge_ttl: 60s
http:
  max_uri_bytes: 8192
  keepalive_timeout: 15s
";

/// The lines of a YAML text as YAML and editors count them (`\n`, `\r\n` or `\r` ends a
/// line), the last one possibly empty.
fn yaml_lines(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(['\n', '\r']) {
        out.push(&rest[..at]);
        let skip = if rest[at..].starts_with("\r\n") { 2 } else { 1 };
        rest = &rest[at + skip..];
    }
    out.push(rest);
    out
}

/// The lines of a blocklist as Rust's `str::lines` counts them (`\n` or `\r\n`).
fn text_lines(text: &str) -> Vec<&str> {
    text.split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect()
}

/// Whether `error` names `file` at a line and column inside `text`, cut in lines by `lines`.
fn placed_within(
    error: &ConfigError,
    file: &str,
    text: &str,
    lines: fn(&str) -> Vec<&str>,
) -> Result<(), String> {
    let ConfigError::At {
        file: named, at, ..
    } = error
    else {
        return Err(format!("no position: {error}"));
    };
    if named != Path::new(file) {
        return Err(format!("names {} instead of {file}", named.display()));
    }
    let lines = lines(text);
    let line = at
        .line
        .checked_sub(1)
        .and_then(|i| lines.get(i))
        .ok_or_else(|| format!("line {} of {}: {error}", at.line, lines.len()))?;
    let columns = line.chars().count() + 1;
    if at.column == 0 || at.column > columns {
        return Err(format!(
            "column {} of {columns} on line {} {line:?}: {error}",
            at.column, at.line
        ));
    }
    if !error
        .to_string()
        .starts_with(&format!("{file}:{}:{}: ", at.line, at.column))
    {
        return Err(format!("the message does not lead with the place: {error}"));
    }
    Ok(())
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(Path::new("flashgate.yaml"), text, &env())
}

/// YAML's own punctuation, the values the file reads, and characters that end lines or not.
#[rustfmt::skip]
const SNIPPETS: [&str; 53] = [
    ":", ": ", "- ", "-", "[", "]", "{", "}", ",", "#", "\n", "\r\n", "\r", "  ", "\t",
    "&a ", "*a", "<<: *a", "!!str ", "!!binary ", "!x ", "'", "\"", "|", ">", "?",
    "${X}", "${LOGIN}", "${SHORT}", "${", "$", "~", "null", "0x1f", "-1", "1e400",
    "99999999999999999999999", "1-0", "0-18446744073709551615", "1h 30m", "0s",
    "::1", "[::]:0", "300.1.1.1/8", "---\n", "...\n", "%YAML 1.2\n", "\u{feff}",
    "\u{85}", "\u{2028}", "\u{a0}", "é", "\0",
];

/// What an edit may put into the text.
fn snippet() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(SNIPPETS.to_vec()).prop_map(str::to_string),
        hostile_text(6),
    ]
}

/// One edit of the text, at a place outside the `origin.url` line.
#[derive(Debug, Clone)]
enum Edit {
    Insert(prop::sample::Index, String),
    Replace(prop::sample::Index, String),
    Delete(prop::sample::Index, usize),
    /// Replace the value of a `key: value` line with a snippet.
    Value(prop::sample::Index, String),
}

fn edit() -> impl Strategy<Value = Edit> {
    let at = any::<prop::sample::Index>();
    let value = prop_oneof![snippet(), hostile_text(12), "-?[0-9]{1,25}(\\.[0-9]+)?"];
    prop_oneof![
        (at.clone(), snippet()).prop_map(|(i, s)| Edit::Insert(i, s)),
        (at.clone(), snippet()).prop_map(|(i, s)| Edit::Replace(i, s)),
        (at.clone(), 1usize..40).prop_map(|(i, n)| Edit::Delete(i, n)),
        (at, value).prop_map(|(i, s)| Edit::Value(i, s)),
    ]
}

/// `text` with `edit` applied; the `origin.url` line is kept as it is.
fn apply(text: &str, edit: &Edit) -> String {
    let url = text.find(URL_LINE);
    let kept = |at: usize| url.is_some_and(|u| at >= u && at < u + URL_LINE.len());
    // Where an edit may start: any character outside the url line, or the end.
    let mut starts: Vec<usize> = text
        .char_indices()
        .map(|(i, _)| i)
        .filter(|i| !kept(*i))
        .collect();
    let chars = starts.len();
    starts.push(text.len());
    let mut out = text.to_string();
    match edit {
        Edit::Insert(at, s) => out.insert_str(starts[at.index(starts.len())], s),
        Edit::Replace(at, s) if chars > 0 => {
            let start = starts[at.index(chars)];
            let width = text[start..].chars().next().map_or(0, char::len_utf8);
            out.replace_range(start..start + width, s);
        }
        Edit::Delete(at, n) if chars > 0 => {
            let start = starts[at.index(chars)];
            let mut end = text[start..]
                .char_indices()
                .nth(*n)
                .map_or(text.len(), |(i, _)| start + i);
            if let Some(u) = url.filter(|u| start < *u && end > *u) {
                end = u;
            }
            out.replace_range(start..end, "");
        }
        Edit::Value(at, s) => {
            let values: Vec<(usize, usize)> = text
                .match_indices(": ")
                .map(|(i, _)| (i + 2, text[i..].find('\n').map_or(text.len(), |n| i + n)))
                // A value may run into the url line once a delete took the
                // newline before it: such a value is not the edit's to replace.
                .filter(|(start, end)| {
                    !url.is_some_and(|u| *start < u + URL_LINE.len() && *end > u)
                })
                .collect();
            if !values.is_empty() {
                let (start, end) = values[at.index(values.len())];
                out.replace_range(start..end, s);
            }
        }
        _ => {}
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_text_is_refused_in_place(text in prop_oneof![
        hostile_text(200),
        "([a-z_]{1,12}|:|: |- |\\[|\\]|\\{|\\}|,|#|'|\"|&a|\\*a|!!|\\||>|\\?|\n|  |\t|\r|[0-9]{1,4}){0,60}",
    ]) {
        if let Err(error) = parse(&text) {
            placed_within(&error, "flashgate.yaml", &text, yaml_lines).map_err(TestCaseError::fail)?;
        }
    }

    #[test]
    fn an_edited_file_is_accepted_or_refused_in_place(edits in prop::collection::vec(edit(), 1..4)) {
        let text = edits.iter().fold(GOOD.to_string(), |t, e| apply(&t, e));
        prop_assert!(text.contains(URL_LINE), "the url line stays");
        if let Err(error) = parse(&text) {
            placed_within(&error, "flashgate.yaml", &text, yaml_lines)
                .map_err(|e| TestCaseError::fail(format!("{e}\n--- text:\n{text}")))?;
        }
    }

    #[test]
    fn any_blocklist_is_read_or_refused_in_place(text in prop_oneof![
        hostile_text(120),
        prop::collection::vec(
            ("[ \t]{0,2}", "(uid|ip|cidr|UID|x|)", "[ \t]{0,1}:?[ \t]{0,1}", hostile_text(20), "(#.{0,5})?"),
            0..6,
        )
        .prop_map(|lines| lines
            .into_iter()
            .map(|(a, k, s, v, c)| format!("{a}{k}{s}{v}{c}"))
            .collect::<Vec<_>>()
            .join("\n")),
    ]) {
        if let Err(error) = Blocklist::parse(Path::new("blocklist.txt"), &text) {
            placed_within(&error, "blocklist.txt", &text, text_lines).map_err(TestCaseError::fail)?;
        }
    }

    #[test]
    fn a_blocklist_blocks_the_users_it_lists(
        uids in prop::collection::vec("[A-Za-z0-9@._+%~-]([A-Za-z0-9@._+%~ -]{0,20}[A-Za-z0-9@._+%~-])?", 1..5),
        other in "[A-Za-z0-9]{1,8}",
    ) {
        let text: String = uids.iter().map(|u| format!("uid:{u}  # listed\n")).collect();
        let list = Blocklist::parse(Path::new("blocklist.txt"), &text).expect("parses");
        for uid in &uids {
            prop_assert!(list.blocks_uid(uid), "{}", uid);
        }
        prop_assert_eq!(list.blocks_uid(&other), uids.contains(&other));
    }

    #[test]
    fn doubled_dollars_expand_to_the_text_itself(text in hostile_text(60)) {
        let escaped = text.replace('$', "$$");
        prop_assert_eq!(
            expand_env(&escaped, |_| Some("set".to_string())),
            Ok(Expanded::Value(text))
        );
    }

    #[test]
    fn any_value_expands_without_a_panic(text in "([a-zA-Z_ ]|\\$|\\{|\\}|\\$\\{[A-Z_]{0,4}\\}?){0,20}") {
        let _ = expand_env(&text, |name| (name == "SET").then(|| "v".to_string()));
    }

    #[test]
    fn an_id_range_is_two_decimal_ids_in_order(
        text in prop_oneof![
            hostile_text(30),
            "[ ]?[+-]?[0-9]{1,21}[ ]?(-[ ]?[+-]?[0-9]{1,21})?[ ]?",
        ],
    ) {
        let expected = {
            let t = text.trim();
            let (a, b) = t.split_once('-').map_or((t, t), |(a, b)| (a.trim(), b.trim()));
            decimal(a).zip(decimal(b)).filter(|(a, b)| a <= b)
        };
        let got = text.parse::<IdRange>().ok().map(|r| (r.first, r.last));
        prop_assert_eq!(got, expected, "{:?}", text);
    }
}

proptest! {
    // Each case writes a file: fewer of them.
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn any_products_file_is_read_or_refused_in_place(
        lines in prop::collection::vec(
            (
                "[ \t\u{3000}]{0,2}",
                prop_oneof![
                    any::<u64>().prop_map(|n| n.to_string()),
                    (any::<u64>(), any::<u64>()).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
                    "[0-9]{1,6}[ ]?-[ ]?[0-9]{1,6}",
                    hostile_text(12),
                ],
                "([ \t]{0,2}#.{0,6})?",
            )
                .prop_map(|(lead, entry, comment)| format!("{lead}{entry}{comment}")),
            0..8,
        ),
    ) {
        let dir = tempfile::tempdir().expect("a temp dir");
        let ids = dir.path().join("products.txt");
        let text = lines.join("\n");
        std::fs::write(&ids, &text).expect("written");
        let config = GOOD.replace(
            "  products: [1-1000, 5000]\n",
            &format!("  products: [1-1000, 5000]\n  products_file: '{}'\n", ids.display()),
        );
        if let Err(error) = parse(&config) {
            let file = ids.display().to_string();
            placed_within(&error, &file, &text, text_lines).map_err(TestCaseError::fail)?;
        }
    }
}

fn decimal(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[test]
fn the_file_edited_by_the_properties_is_valid() {
    let config = parse(GOOD).expect("GOOD is valid");
    assert_eq!(config.sales.len(), 2);
    assert!(GOOD.contains(URL_LINE));
}
