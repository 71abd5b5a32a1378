//! Unit tests of the captcha check: challenges and passes accepted, and every way of getting
//! one wrong refused.

use super::*;
use crate::ground::signing::pass_token;
use std::collections::HashMap;
use std::time::Duration;

const NOW: u64 = 1_800_000_000_000;

fn token_key() -> Secret {
    Secret::new(b"token-secret-token-secret-token-secret!!".to_vec())
}

/// The check with four sales: 1 asks for nothing, 2 and 4 for proof of work, 3 for a pass.
struct Fixture {
    check: CaptchaCheck,
    sales: HashMap<u64, SaleCaptcha>,
}

impl Fixture {
    fn new(settings: &CaptchaSettings, edge: &Secret, sales: &[(u64, Captcha)]) -> Self {
        Fixture {
            check: CaptchaCheck::new(settings, edge),
            sales: sales
                .iter()
                .map(|(p, mode)| (*p, SaleCaptcha::new(*mode, settings)))
                .collect(),
        }
    }

    fn check(
        &self,
        uid: &str,
        product: u64,
        header: Option<&str>,
        now: u64,
    ) -> Result<Option<CaptchaPass>, CaptchaRefused> {
        self.check
            .check(&self.sales[&product], uid, product, header, now)
    }

    fn issue(&self, uid: &str, product: u64, now: u64) -> Option<Challenge> {
        self.check.issue(&self.sales[&product], uid, product, now)
    }

    fn difficulty(&self, product: u64, now: u64) -> Option<u8> {
        self.sales[&product].difficulty(now)
    }

    fn difficulties(&self, now: u64) -> impl Iterator<Item = (u64, u8)> + '_ {
        self.sales
            .iter()
            .filter_map(move |(p, s)| Some((*p, s.difficulty(now)?)))
    }
}

fn check() -> Fixture {
    let settings = CaptchaSettings {
        difficulty: 8,
        max_difficulty: 12,
        raise_above: 50,
        challenge_ttl: Duration::from_secs(60),
        token_secret: Some(token_key()),
        single_use_capacity: 100,
    };
    let sales = [
        (1, Captcha::None),
        (2, Captcha::Pow),
        (3, Captcha::Token),
        (4, Captcha::Pow),
    ];
    Fixture::new(&settings, &Secret::new(vec![9u8; 32]), &sales)
}

fn solved(c: &Challenge) -> String {
    let nonce = pow::solve(&c.challenge, c.difficulty, 1 << 24).expect("solvable");
    format!("{}.{nonce}", c.challenge)
}

#[test]
fn sales_without_captcha_pass_untouched() {
    assert_eq!(check().check("u", 1, None, NOW), Ok(None));
    assert_eq!(
        check().issue("u", 1, NOW),
        None,
        "no challenge for a none sale"
    );
}

#[test]
fn a_solved_challenge_passes_once_claimed_by_its_id() {
    let c = check();
    let ch = c.issue("alice", 2, NOW).unwrap();
    assert_eq!(ch.difficulty, 8);
    assert_eq!(ch.expires_ms, NOW + 60_000);
    assert!(!ch.challenge.contains('.') && !ch.challenge.contains(':'));
    let pass = c
        .check("alice", 2, Some(&solved(&ch)), NOW + 1)
        .unwrap()
        .unwrap();
    assert_eq!(pass.product, 2);
    assert_eq!(pass.expires_ms, ch.expires_ms);
    assert!(pass.key.starts_with("p:"));
    let other = c.issue("alice", 2, NOW).unwrap();
    assert_ne!(other.challenge, ch.challenge, "each challenge is new");
    let pass2 = c
        .check("alice", 2, Some(&solved(&other)), NOW)
        .unwrap()
        .unwrap();
    assert_ne!(pass.key, pass2.key, "keys are unique per challenge");
}

#[test]
fn refuses_missing_forged_foreign_expired_and_unworked() {
    let c = check();
    let ch = c.issue("alice", 2, NOW).unwrap();
    let good = solved(&ch);
    assert!(c.check("alice", 2, Some(&good), NOW).is_ok());
    // Find a nonce that does NOT do the work.
    let lazy = (0u64..)
        .find(|n| !pow::work_ok(&ch.challenge, &n.to_string(), ch.difficulty))
        .unwrap();
    let other_product = solved(&c.issue("alice", 4, NOW).unwrap());
    let mut tampered_bits = ch.challenge.clone();
    let first_dash = tampered_bits.find('-').unwrap();
    tampered_bits.replace_range(first_dash + 1..first_dash + 2, "1"); // "8" -> "1"
    let cheap = pow::solve(&tampered_bits, 1, 1000).unwrap();
    let cases: [(&str, Option<String>, u64, u64); 8] = [
        ("no header", None, 2, NOW),
        ("another user", Some(good.clone()), 2, NOW),
        ("another product", Some(other_product), 2, NOW),
        ("expired", Some(good.clone()), 2, ch.expires_ms),
        ("no work", Some(format!("{}.{lazy}", ch.challenge)), 2, NOW),
        (
            "lowered difficulty",
            Some(format!("{tampered_bits}.{cheap}")),
            2,
            NOW,
        ),
        ("garbage", Some("1-2-3-4.5".into()), 2, NOW),
        ("no nonce", Some(ch.challenge.clone()), 2, NOW),
    ];
    for (what, header, product, now) in cases {
        let uid = if what == "another user" {
            "mallory"
        } else {
            "alice"
        };
        assert_eq!(
            c.check(uid, product, header.as_deref(), now),
            Err(CaptchaRefused),
            "{what} must be refused"
        );
    }
    let huge = format!("{}.{}", "1".repeat(300), 1);
    assert_eq!(c.check("alice", 2, Some(&huge), NOW), Err(CaptchaRefused));
}

#[test]
fn a_challenge_from_another_edge_secret_is_refused() {
    let c = check();
    let settings = CaptchaSettings {
        difficulty: 8,
        ..CaptchaSettings::default()
    };
    let foreign = Fixture::new(&settings, &Secret::new(vec![1u8; 32]), &[(2, Captcha::Pow)]);
    let ch = foreign.issue("alice", 2, NOW).unwrap();
    assert_eq!(
        c.check("alice", 2, Some(&solved(&ch)), NOW),
        Err(CaptchaRefused)
    );
}

#[test]
fn a_signed_number_in_another_spelling_is_refused() {
    // Found by the property tests (tests/properties): `+expires` or a difficulty of `08` read
    // as the number the MAC covers, so text the edge never minted passed.
    let c = check();
    let ch = c.issue("alice", 2, NOW).unwrap();
    let (expires, rest) = ch.challenge.split_once('-').unwrap();
    let (bits, tail) = rest.split_once('-').unwrap();
    for respelt in [
        format!("+{expires}-{bits}-{tail}"),
        format!("0{expires}-{bits}-{tail}"),
        format!("{expires}-0{bits}-{tail}"),
        format!("{expires}-+{bits}-{tail}"),
    ] {
        let header = solved(&Challenge {
            challenge: respelt.clone(),
            ..ch.clone()
        });
        assert_eq!(
            c.check("alice", 2, Some(&header), NOW),
            Err(CaptchaRefused),
            "{respelt}"
        );
    }
    let good = pass_token(&token_key(), "bob", 3, NOW + 30_000, "svc_1");
    assert!(c.check("bob", 3, Some(&good), NOW).is_ok());
    for respelt in [format!("+{good}"), format!("0{good}")] {
        assert_eq!(
            c.check("bob", 3, Some(&respelt), NOW),
            Err(CaptchaRefused),
            "{respelt}"
        );
    }
}

#[test]
fn pass_tokens_are_checked_like_challenges() {
    let c = check();
    let exp = NOW + 30_000;
    let good = pass_token(&token_key(), "bob", 3, exp, "svc_123");
    let pass = c.check("bob", 3, Some(&good), NOW).unwrap().unwrap();
    assert_eq!(pass.key, "t:svc_123");
    assert_eq!(pass.expires_ms, exp);
    let wrong_key = Secret::new(b"not-the-token-secret-not-the-token-secret".to_vec());
    for (what, uid, product, header, now) in [
        ("missing", "bob", 3, None, NOW),
        ("another user", "eve", 3, Some(good.clone()), NOW),
        ("another product", "bob", 2, Some(good.clone()), NOW),
        ("expired", "bob", 3, Some(good.clone()), exp),
        (
            "signed by someone else",
            "bob",
            3,
            Some(pass_token(&wrong_key, "bob", 3, exp, "x")),
            NOW,
        ),
        (
            "lives too long",
            "bob",
            3,
            Some(pass_token(&token_key(), "bob", 3, NOW + 3_600_000, "y")),
            NOW,
        ),
        (
            "bad id",
            "bob",
            3,
            Some(pass_token(&token_key(), "bob", 3, exp, "a-b")),
            NOW,
        ),
    ] {
        assert_eq!(
            c.check(uid, product, header.as_deref(), now),
            Err(CaptchaRefused),
            "{what}"
        );
    }
}

#[test]
fn busy_sales_get_harder_challenges() {
    let c = check();
    assert_eq!(c.difficulty(2, NOW), Some(8));
    for i in 0..200 {
        let _ = c.check("bot", 2, None, NOW + i);
    }
    assert_eq!(
        c.difficulty(2, NOW + 1_000),
        Some(9),
        "200 buys/s is above 50"
    );
    assert_eq!(c.issue("alice", 2, NOW + 1_000).unwrap().difficulty, 9);
    assert_eq!(
        c.difficulty(4, NOW + 1_000),
        Some(8),
        "the other sale is calm"
    );
    assert_eq!(c.difficulty(1, NOW), None);
    let gauges: HashMap<u64, u8> = c.difficulties(NOW + 1_000).collect();
    assert_eq!(gauges, HashMap::from([(2, 9), (4, 8)]));
}
