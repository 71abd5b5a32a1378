//! `flashgate-orders`: the order backend. `run` serves the API with its ledger consumer and
//! payment sweeper; `reconcile` compares Redis with the database (and repairs Redis with
//! `--fix`).

// No unwrap() outside tests (clippy.toml allows it in #[test] and #[cfg(test)] code): proper
// errors, or expect("why it cannot fail") for startup invariants. Set in each crate root rather
// than in Cargo.toml's [lints], which would reach into the integration tests as well.
#![deny(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use flashgate::orders::settings::{self, Overrides};
use flashgate::orders::{self as orders, reconcile};
use flashgate::stock::redis::ledger::Ledgers;

#[derive(Parser)]
#[command(
    name = "flashgate-orders",
    version,
    about = "The order backend behind flashgate"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the order API, consume the sale ledgers, cancel unpaid orders.
    Run(Common),
    /// Compare Redis with the database; --fix rewrites Redis from the database.
    Reconcile {
        #[command(flatten)]
        common: Common,
        /// Make the orders of dead-lettered reservations (safe during a live sale).
        #[arg(long)]
        dead_letters: bool,
        /// Also rewrite every inconsistent sale in Redis from the database (pause the sale and
        /// stop the order backends first).
        #[arg(long)]
        fix: bool,
    },
}

#[derive(Args)]
struct Common {
    /// Settings file (flags override it).
    #[arg(long)]
    config: Option<PathBuf>,
    /// HTTP listener (default 127.0.0.1:8081).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// sqlite://path (created if missing; the default is sqlite://flashgate-orders.db) or
    /// postgres://user@host/db.
    #[arg(long)]
    database: Option<String>,
    /// Redis holding the sales: the edge's store.url (default redis://127.0.0.1:6379).
    #[arg(long, conflicts_with_all = ["cluster", "sentinel"])]
    redis: Option<String>,
    /// A Redis Cluster holding the sales, by seed nodes: the edge's store.cluster
    /// (redis://a:7000,redis://b:7000).
    #[arg(long, value_delimiter = ',', num_args = 1.., conflicts_with = "sentinel")]
    cluster: Option<Vec<String>>,
    /// A master found through Redis Sentinel: the edge's store.sentinel, as
    /// NAME@redis://host:26379,redis://host2:26379.
    #[arg(long)]
    sentinel: Option<String>,
    /// How long a buyer has to pay (default 15m).
    #[arg(long, value_parser = humantime::parse_duration)]
    payment_timeout: Option<Duration>,
}

impl Common {
    fn settings(self) -> anyhow::Result<settings::Settings> {
        let Common {
            config,
            listen,
            database,
            redis,
            cluster,
            sentinel,
            payment_timeout,
        } = self;
        let sentinel = sentinel
            .map(|s| settings::sentinel_flag(&s))
            .transpose()
            .map_err(|e| anyhow::anyhow!("--sentinel: {e}"))?;
        let settings = settings::resolve(Overrides {
            config,
            listen,
            database,
            redis,
            cluster,
            sentinel,
            payment_timeout,
        })?;
        if settings.development_secret {
            // Fail closed when half-configured: the deployment has secrets, but not the one
            // this process needs, and it would accept forwards signed with the public key.
            let set = flashgate::config::secret_variables_set(&flashgate::config::ProcessEnv);
            if !set.is_empty() {
                anyhow::bail!(
                    "the edge secret is not set (edge_secret; FLASHGATE_EDGE_SECRET unless the \
                     settings file names another variable), while {} is: set the edge's secret \
                     too, or none of them for development",
                    set.join(", ")
                );
            }
            tracing::warn!(
                "DEVELOPMENT edge secret in use: set FLASHGATE_EDGE_SECRET (the edge's secret) before a real sale"
            );
        }
        Ok(settings)
    }
}

fn main() -> ExitCode {
    flashgate::ground::logging::init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("flashgate-orders: cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(Cli::parse())) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("flashgate-orders: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run(common) => {
            let settings = common.settings()?;
            ignore_hangups()?;
            orders::serve(settings).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Reconcile {
            common,
            dead_letters,
            fix,
        } => {
            let settings = common.settings()?;
            let state = orders::open(&settings).await?;
            let ledgers = Ledgers::new(settings.redis.clone(), Duration::from_secs(5));
            let reports = reconcile::compare(&state.db, &state.stock, &ledgers).await?;
            for report in &reports {
                println!("{report}");
            }
            let inconsistent = reports.iter().filter(|r| !r.consistent()).count();
            if inconsistent == 0 {
                println!("all {} sale(s) consistent", reports.len());
                return Ok(ExitCode::SUCCESS);
            }
            if !(dead_letters || fix) {
                println!(
                    "{inconsistent} sale(s) differ; --dead-letters makes the orders of dead-lettered \
                     reservations (safe on a live sale); --fix also rewrites Redis from the database"
                );
                return Ok(ExitCode::from(3));
            }
            let placed = reconcile::place_dead_letters(&state, &ledgers, &reports).await?;
            println!(
                "made {} order(s) of dead-lettered reservations, settled {} other dead letter(s)",
                placed.placed, placed.settled
            );
            if fix {
                let reports = reconcile::compare(&state.db, &state.stock, &ledgers).await?;
                let rewritten = reconcile::rewrite(&state.stock, &reports).await?;
                println!("rewrote {rewritten} sale(s) in Redis from the database");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// SIGHUP (`systemctl reload`) would end the process by default; the order backend has nothing
/// to reload (its settings are read at start), so it says so and keeps serving.
fn ignore_hangups() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangups = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            tracing::warn!(
                "SIGHUP: flashgate-orders has nothing to reload; restart it to apply new settings"
            );
        }
    });
    Ok(())
}
