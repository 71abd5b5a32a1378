//! The `flashgate` command: `run` the gateway, `check` a configuration, mint a login `token`
//! for development and load tests, rehearse a sale with `storm`, and show everything at once
//! with `demo`. This file holds the flags; what the commands beyond `run` and `token` do lives
//! in [`cli`], outside the library.

// No unwrap() outside tests (clippy.toml allows it in #[test] and #[cfg(test)] code): proper
// errors, or expect("why it cannot fail") for startup invariants. Set in each crate root rather
// than in Cargo.toml's [lints], which would reach into the integration tests as well.
#![deny(clippy::unwrap_used)]

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::{Parser, Subcommand};
use flashgate::admission::login;
use flashgate::config::{Config, IdRange};
use flashgate::{edge, root};

use cli::{demo, probe, stock, storm, summary};

#[derive(Parser)]
#[command(
    name = "flashgate",
    version,
    about = "Edge gateway for flash sales, built on Pingora"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Run {
        /// Configuration file.
        #[arg(long, short, default_value = "conf/flashgate.yaml")]
        config: PathBuf,
        /// Refuse to start on the built-in development secrets.
        #[arg(long)]
        require_secrets: bool,
        /// Take the listening sockets over from the flashgate running on the same port, which
        /// then drains and exits: a new binary or a listener change without refusing a
        /// connection (docs/reload-and-upgrade.md, "Upgrading without a gap").
        #[arg(long)]
        upgrade: bool,
    },
    /// Check a configuration and print what it would run, with warnings about risky
    /// settings.
    Check {
        /// Configuration file.
        #[arg(long, short, default_value = "conf/flashgate.yaml")]
        config: PathBuf,
        /// Also send the origin one signed forward that cannot make an order, and say whether
        /// it accepts the edge's signature (exit 1 if not, 2 if it cannot be told).
        #[arg(long)]
        probe_origin: bool,
    },
    /// Seed or inspect the stock of the configured sales in the Redis store.
    Stock {
        #[command(subcommand)]
        action: StockAction,
    },
    /// Mint login tokens (HS256 JWTs, `sub` = UID) with the configured login secret, one a line.
    Token {
        /// Configuration file (for the login secret).
        #[arg(long, short, default_value = "conf/flashgate.yaml")]
        config: PathBuf,
        /// User ids: one (`42`, `alice`) or a numeric range (`1-1000`).
        #[arg(long)]
        uid: String,
        /// Prefix put before numeric ids (`--uid 1-3 --prefix u` gives u1, u2, u3).
        #[arg(long, default_value = "")]
        prefix: String,
        /// Lifetime of the tokens.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: Duration,
    },
    /// Rehearse a sale: send a crowd of buyers (and some bots) at an edge, then print what
    /// happened. Only ever talks to --target.
    Storm(StormArgs),
    /// A whole sale on this machine in one command: the edge, an order backend, a demo sale
    /// and a storm against it; prints the results and the URLs, then stops (unless --keep).
    Demo(DemoArgs),
}

/// `flashgate demo`'s flags.
#[derive(clap::Args)]
struct DemoArgs {
    /// Leave the servers running (until Ctrl-C) to look at the page and the metrics.
    #[arg(long)]
    keep: bool,
    /// The edge's public address; a taken port is replaced by a free one.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
    /// The edge's admin address (metrics); a taken port is replaced by a free one.
    #[arg(long, default_value = "127.0.0.1:9090")]
    admin: std::net::SocketAddr,
    /// Users in the storm.
    #[arg(long, default_value_t = 2000)]
    users: usize,
    /// Units on sale.
    #[arg(long, default_value_t = 100)]
    stock: u64,
    /// Longest storm.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// The sale's captcha: pow or none.
    #[arg(long, default_value = "pow")]
    captcha: String,
    /// Proof-of-work bits of the demo sale.
    #[arg(long, default_value_t = 12)]
    difficulty: u8,
    /// Take orders with the in-process stand-in even when flashgate-orders could run.
    #[arg(long)]
    stand_in: bool,
}

/// `flashgate storm`'s flags.
#[derive(clap::Args)]
struct StormArgs {
    /// The edge's public URL, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    target: String,
    /// The login secret (HS256 key) to mint the users' tokens with.
    #[arg(long)]
    login_secret: String,
    /// Distinct users in the crowd.
    #[arg(long, default_value_t = 10_000)]
    users: usize,
    /// Longest time the crowd is sent for.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Most buy requests sent.
    #[arg(long, default_value_t = 1_000_000)]
    requests: u64,
    /// Concurrent connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Share of requests from bots (a few accounts that solve no captcha), 0 to 1.
    #[arg(long, default_value_t = 0.05)]
    bots: f64,
    /// Share of requests for products that do not exist, 0 to 1.
    #[arg(long, default_value_t = 0.02)]
    unknown: f64,
    /// The product on sale.
    #[arg(long, default_value_t = 42)]
    product: u64,
    /// For a `captcha: token` sale: the captcha service's key, to mint passes with.
    #[arg(long)]
    captcha_secret: Option<String>,
    /// Longest wait for the sale to open.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    wait: Duration,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Rehearse a sale with a waiting room: every user joins the pre-queue, polls, and buys
    /// with the pass once let through; the draw is checked against its published hash.
    #[arg(long)]
    queue: bool,
}

impl StormArgs {
    fn plan(self) -> (storm::Plan, Option<PathBuf>) {
        use std::io::IsTerminal;
        let StormArgs {
            target,
            login_secret,
            users,
            duration,
            requests,
            connections,
            bots,
            unknown,
            product,
            captcha_secret,
            wait,
            json,
            queue: _,
        } = self;
        let plan = storm::Plan {
            target,
            login_secret,
            users,
            duration,
            requests,
            connections,
            bots,
            unknown,
            product,
            captcha_secret,
            wait,
            progress: std::io::stderr().is_terminal(),
        };
        (plan, json)
    }
}

#[derive(Subcommand)]
enum StockAction {
    /// Seed each configured sale's stock (refuses a sale that has buyers unless --force).
    Load {
        /// Configuration file.
        #[arg(long, short, default_value = "conf/flashgate.yaml")]
        config: PathBuf,
        /// Restock sales that have buyers to the configured total: every buyer keeps their
        /// unit, the rest goes on sale.
        #[arg(long)]
        force: bool,
    },
    /// Print remaining units, buyers and ledger length per sale.
    Show {
        /// Configuration file.
        #[arg(long, short, default_value = "conf/flashgate.yaml")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    flashgate::ground::logging::init();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("flashgate: {}", report(&e));
            ExitCode::FAILURE
        }
    }
}

/// `e` and its causes, as `{:#}` writes them, but leaving out a cause the message already
/// says (errors that name their file write their cause into their own message).
fn report(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let said = cause.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
    }
    text
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let done = match cli.command {
        Command::Run {
            config,
            require_secrets,
            upgrade,
        } => serve(&config, require_secrets, upgrade),
        Command::Check {
            config,
            probe_origin,
        } => return check(&config, probe_origin),
        Command::Stock { action } => match action {
            StockAction::Load { config, force } => stock::load(&Config::load(&config)?, force),
            StockAction::Show { config } => stock::show(&Config::load(&config)?),
        },
        Command::Token {
            config,
            uid,
            prefix,
            ttl,
        } => {
            let config = Config::load(&config)?;
            mint_tokens(&config, &uid, &prefix, ttl)
        }
        Command::Storm(args) => storm(args),
        Command::Demo(args) => demo(args),
    };
    done.map(|()| ExitCode::SUCCESS)
}

/// `flashgate run`.
fn serve(config: &std::path::Path, require_secrets: bool, upgrade: bool) -> anyhow::Result<()> {
    // First of all: a SIGHUP while the configuration loads must not end the process.
    edge::hangup::take_over()?;
    let config = Config::load(config)?;
    if require_secrets && !config.secrets.development.is_empty() {
        anyhow::bail!(
            "development secrets in use ({}); set FLASHGATE_LOGIN_SECRET and FLASHGATE_EDGE_SECRET",
            config.secrets.development.join(", ")
        );
    }
    // The sockets first (in an upgrade, from the running process), then the store: the
    // embedded store's journal is free only once that process has drained.
    let prepared = edge::prepare(&config, upgrade)?;
    let opening = if upgrade {
        root::Opening::Upgrade
    } else {
        root::Opening::Start
    };
    let gateway = root::gateway(config, opening)?;
    for w in root::risks(&gateway) {
        w.log();
    }
    edge::run(prepared, gateway)
}

/// `flashgate check`: the summary, and with `--probe-origin` the probe's verdict.
fn check(config: &std::path::Path, probe_origin: bool) -> anyhow::Result<ExitCode> {
    let config = Config::load(config)?;
    let gateway = root::inspected(config)?;
    print!("{}", summary::summary(&gateway.live()));
    let found = root::risks(&gateway);
    if found.is_empty() {
        println!("  warnings    none");
    } else {
        println!("  warnings    {}", found.len());
        for w in &found {
            println!("    ! {}", w.text);
        }
    }
    if !probe_origin {
        return Ok(ExitCode::SUCCESS);
    }
    let found = runtime()?.block_on(probe::probe(&gateway.live().config));
    for line in &found.lines {
        println!("{line}");
    }
    Ok(match found.verdict {
        probe::Verdict::Accepted => ExitCode::SUCCESS,
        probe::Verdict::Failed => ExitCode::FAILURE,
        probe::Verdict::Inconclusive => ExitCode::from(2),
    })
}

/// `flashgate storm`.
fn storm(args: StormArgs) -> anyhow::Result<()> {
    let queued = args.queue;
    let (plan, json) = args.plan();
    if queued {
        let report = runtime()?.block_on(storm::queue::run(plan))?;
        print!("{}", report.table());
        if let Some(path) = json {
            std::fs::write(&path, serde_json::to_vec_pretty(&report)?)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        if !report.sound() {
            anyhow::bail!("the queue's checks failed (see the table)");
        }
        return Ok(());
    }
    let report = runtime()?.block_on(storm::run(plan))?;
    print!("{}", report.table());
    if let Some(path) = json {
        std::fs::write(&path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if report.won_twice > 0 {
        anyhow::bail!("{} users won twice", report.won_twice);
    }
    Ok(())
}

fn demo(args: DemoArgs) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let DemoArgs {
        keep,
        listen,
        admin,
        users,
        stock,
        duration,
        captcha,
        difficulty,
        stand_in,
    } = args;
    runtime()?.block_on(demo::run(demo::Demo {
        listen,
        admin,
        users,
        stock,
        duration,
        captcha,
        difficulty,
        keep,
        progress: std::io::stderr().is_terminal(),
        stand_in,
    }))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting a runtime")
}

fn mint_tokens(config: &Config, uid: &str, prefix: &str, ttl: Duration) -> anyhow::Result<()> {
    use std::io::Write;
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("system clock before 1970")?
        .saturating_add(ttl)
        .as_secs();
    let uids: Box<dyn Iterator<Item = String>> = match uid.parse::<IdRange>() {
        Ok(range) => Box::new((range.first..=range.last).map(move |n| format!("{prefix}{n}"))),
        Err(_) => Box::new(std::iter::once(format!("{prefix}{uid}"))),
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for sub in uids {
        if !flashgate::ground::uid::valid(&sub) {
            anyhow::bail!(
                "UID {sub:?} is outside the UID alphabet (docs/origin-contract.md, \"User ids\"): the edge would refuse its token"
            );
        }
        let token = login::mint(&config.secrets.login, &sub, exp);
        writeln!(out, "{token}")?;
    }
    out.flush()?;
    Ok(())
}
