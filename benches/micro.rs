//! Micro-benchmarks of the buy path's parts, each without a socket: what one request costs in
//! the login check, the catalog, the rate limits, the routing, the embedded store's reserve,
//! and the whole checkout decision for a reject and for a win. Not run in CI; quick runs:
//!
//! ```sh
//! cargo bench --bench micro -- --quick            # every benchmark, a few seconds each
//! cargo bench --bench micro -- checkout --quick   # one group
//! ```
//!
//! The side-by-side load benchmark, over real sockets, is `benches/load`.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use futures::executor::block_on;
use http::Method;
use prometheus::IntCounter;

use flashgate::admission::catalog::ProductFilter;
use flashgate::admission::login::{self, Login};
use flashgate::admission::rate::RateLimiter;
use flashgate::admission::BuyRequest;
use flashgate::checkout::{Checkout, Decision};
use flashgate::config::{Catalog, Config, Environment, IdRange, Limit, LimitKey, ListedIds, Scope};
use flashgate::edge::routes::classify;
use flashgate::ground::clock::now_ms;
use flashgate::ground::metrics::Metrics;
use flashgate::ground::metrics::RuleCounters;
use flashgate::ground::Secret;
use flashgate::stock::memory::MemoryStore;
use flashgate::stock::single_use::MemorySingleUse;
use flashgate::stock::{SaleKeys, StockStore};

const LOGIN_SECRET: &str = "bench-login-secret-0123456789abcdef-0123";

fn login_secret() -> Secret {
    Secret::new(LOGIN_SECRET.as_bytes().to_vec())
}

fn token(uid: &str) -> String {
    let exp = now_ms() / 1000 + 3600;
    login::mint(&login_secret(), uid, exp)
}

/// The same token with its signature's last characters changed.
fn forged(token: &str) -> String {
    let keep = token.len() - 4;
    let tail = if &token[keep..] == "AAAA" {
        "BBBB"
    } else {
        "AAAA"
    };
    format!("{}{tail}", &token[..keep])
}

fn login(c: &mut Criterion) {
    let verifier = Login::new(&login_secret());
    let good = token("u12345");
    let bad = forged(&good);
    let mut g = c.benchmark_group("login");
    g.bench_function("verify valid HS256", |b| {
        b.iter(|| verifier.verify(black_box(&good)))
    });
    g.bench_function("verify forged", |b| {
        b.iter(|| verifier.verify(black_box(&bad)))
    });
    // The same two tokens through the jsonwebtoken crate, which `admission::jwt` replaced:
    // the side-by-side ratio of the one-pass reader.
    let key = jsonwebtoken::DecodingKey::from_secret(login_secret().bytes());
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_required_spec_claims(&["exp"]);
    #[derive(serde::Deserialize)]
    struct Claims {
        #[allow(dead_code)]
        sub: String,
    }
    g.bench_function("jsonwebtoken crate, valid", |b| {
        b.iter(|| jsonwebtoken::decode::<Claims>(black_box(&good), &key, &validation).is_ok())
    });
    g.bench_function("jsonwebtoken crate, forged", |b| {
        b.iter(|| jsonwebtoken::decode::<Claims>(black_box(&bad), &key, &validation).is_ok())
    });
    g.finish();
}

fn catalog(c: &mut Criterion) {
    let ranges = ProductFilter::build(&Catalog {
        ranges: vec![
            IdRange {
                first: 1,
                last: 1000,
            },
            IdRange {
                first: 5000,
                last: 9000,
            },
        ],
        listed: ListedIds::Ids(Arc::new([])),
        false_positive_rate: 0.001,
    })
    .expect("a range catalog builds");
    // More listed ids than are kept exactly: a Bloom filter.
    let bloom = ProductFilter::build(&Catalog {
        ranges: Vec::new(),
        listed: ListedIds::Ids((0..200_000u64).map(|i| i * 3).collect()),
        false_positive_rate: 0.001,
    })
    .expect("a listed catalog builds");
    let mut g = c.benchmark_group("catalog");
    g.bench_function("ranges, known", |b| {
        b.iter(|| ranges.may_contain(black_box(42)))
    });
    g.bench_function("ranges, unknown", |b| {
        b.iter(|| ranges.may_contain(black_box(150_000)))
    });
    g.bench_function("bloom, known", |b| {
        b.iter(|| bloom.may_contain(black_box(42_000)))
    });
    g.bench_function("bloom, unknown", |b| {
        b.iter(|| bloom.may_contain(black_box(42_001)))
    });
    g.finish();
}

fn limit(name: &str, key: LimitKey, requests: u64, expected_keys: usize) -> Limit {
    Limit {
        name: name.to_string(),
        key,
        requests,
        per: Duration::from_secs(10),
        dry_run: false,
        expected_keys,
        scope: Scope::Local,
        buys: true,
    }
}

fn rate(c: &mut Criterion) {
    let counter = |name: &str| {
        let c = |what: &str| {
            IntCounter::new(format!("bench_{what}_{}", name.replace('-', "_")), "bench")
                .expect("a counter")
        };
        RuleCounters {
            refused: c("refused"),
            dry_run: c("dry_run"),
        }
    };
    // The storm's two limits; the first is passed, the second refuses (one user, over 5).
    let limits = [
        limit("per-ip", LimitKey::Ip, 1 << 40, 32_768),
        limit("per-uid", LimitKey::Uid, 5, 32_768),
    ];
    let limiter = RateLimiter::new(&limits, &[], counter);
    let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    let uids: Vec<String> = (0..20_000).map(|n| format!("u{n}")).collect();
    let next = AtomicU64::new(0);
    let mut g = c.benchmark_group("rate");
    g.bench_function("check, passed (20,000 users in turn)", |b| {
        b.iter(|| {
            let n = next.fetch_add(1, Ordering::Relaxed) as usize % uids.len();
            // Over the limit after 5 rounds of the crowd, like the storm.
            let _ = black_box(limiter.check(ip, &uids[n]));
        })
    });
    for _ in 0..10 {
        let _ = limiter.check(ip, "hammer");
    }
    g.bench_function("check, refused", |b| {
        b.iter(|| limiter.check(black_box(ip), black_box("hammer")))
    });
    g.finish();
}

fn routes(c: &mut Criterion) {
    let mut g = c.benchmark_group("routes");
    let buy = "/buy/42/0123456789abcdef0123456789abcdef";
    g.bench_function("classify buy", |b| {
        b.iter(|| classify(black_box(&Method::POST), black_box(buy)))
    });
    g.bench_function("classify page", |b| {
        b.iter(|| classify(black_box(&Method::GET), black_box("/")))
    });
    g.bench_function("classify not found", |b| {
        b.iter(|| classify(black_box(&Method::GET), black_box("/wp-login.php")))
    });
    g.finish();
}

fn store(c: &mut Criterion) {
    let store = MemoryStore::new([(42, u64::MAX / 2)]);
    let keys = SaleKeys::of(42);
    let next = AtomicU64::new(0);
    let mut g = c.benchmark_group("store");
    g.bench_function("memory reserve, won", |b| {
        b.iter_batched(
            || format!("u{}", next.fetch_add(1, Ordering::Relaxed)),
            |uid| block_on(store.reserve(&keys, &uid, &flashgate::stock::Attempt::new().unwrap())),
            BatchSize::SmallInput,
        )
    });
    let sold_out = MemoryStore::new([(42, 0)]);
    g.bench_function("memory reserve, sold out", |b| {
        b.iter(|| {
            block_on(sold_out.reserve(
                &keys,
                black_box("u1"),
                &flashgate::stock::Attempt::new().unwrap(),
            ))
        })
    });
    g.finish();
}

struct NoEnv;
impl Environment for NoEnv {
    fn var(&self, _: &str) -> Option<String> {
        None
    }
}

/// A checkout on the embedded store for product 42 with `stock` units in the store (the
/// configuration's own stock only seeds a store, so it says 1), and the storm's two limits (high
/// enough never to refuse here: they still count).
fn checkout(stock: u64) -> Checkout {
    let yaml = format!(
        "listen: 127.0.0.1:1\n\
         secrets: {{ login: {LOGIN_SECRET}, edge: bench-edge-secret-0123456789abcdef-01234 }}\n\
         origin: {{ url: http://127.0.0.1:2 }}\n\
         catalog: {{ products: [1-1000] }}\n\
         sales:\n  - {{ product: 42, stock: 1, starts_at: 2020-01-01T00:00:00Z, ends_at: 2100-01-01T00:00:00Z }}\n\
         limits:\n\
         \x20 - {{ name: per-ip, key: ip, requests: 1000000000000, per: 10s, expected_keys: 32768 }}\n\
         \x20 - {{ name: per-uid, key: uid, requests: 1000000000000, per: 10s, expected_keys: 32768 }}\n\
         sold_out_hint: 1h\n"
    );
    let config = Config::parse(Path::new("bench.yaml"), &yaml, &NoEnv).expect("a valid config");
    let store = Arc::new(MemoryStore::new([(42, stock)]));
    let used = Arc::new(MemorySingleUse::new(16));
    let metrics = Arc::new(Metrics::new().expect("metrics register"));
    Checkout::build(&config, store, used, metrics).expect("the checkout builds")
}

fn request<'a>(product: u64, path_token: &'a str, login_token: &'a str) -> BuyRequest<'a> {
    BuyRequest {
        product,
        token: path_token,
        login_token: Some(login_token),
        client_ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        now_ms: now_ms(),
        captcha: None,
        queue_pass: None,
    }
}

fn path_token(checkout: &Checkout) -> String {
    let path = checkout.sale(42).expect("sale 42").gate.buy_path();
    path.rsplit('/').next().unwrap_or_default().to_string()
}

fn decision(c: &mut Criterion) {
    let mut g = c.benchmark_group("checkout");

    // After the sell-out: every check passes, then the local sold-out hint answers (no store).
    let sold_out = checkout(0);
    let path = path_token(&sold_out);
    let user = token("u1");
    let first = block_on(sold_out.buy(&request(42, &path, &user)));
    assert!(
        matches!(first, Decision::Answer(_)),
        "stock 0 sells nothing"
    );
    g.bench_function("reject: sold out (every check, then the hint)", |b| {
        b.iter(|| block_on(sold_out.buy(black_box(&request(42, &path, &user)))))
    });
    g.bench_function("reject: unknown product", |b| {
        b.iter(|| block_on(sold_out.buy(black_box(&request(150_000, &path, &user)))))
    });
    let bad = forged(&user);
    g.bench_function("reject: forged login", |b| {
        b.iter(|| block_on(sold_out.buy(black_box(&request(42, &path, &bad)))))
    });

    // A win: every check, then the embedded store's reserve; a new user each time.
    let open = checkout(u64::MAX / 2);
    let path = path_token(&open);
    let next = AtomicU64::new(0);
    g.bench_function("pass: won on the embedded store", |b| {
        b.iter_batched(
            || token(&format!("w{}", next.fetch_add(1, Ordering::Relaxed))),
            |t| {
                let d = block_on(open.buy(&request(42, &path, &t)));
                debug_assert!(matches!(d, Decision::Forward(_)));
                d
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group! {
    name = micro;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(30);
    targets = login, catalog, rate, routes, store, decision
}
criterion_main!(micro);
