//! The `flashgate` command: `run` the gateway, `check` a configuration, mint a login `token`
//! for development and load tests.

mod cli_stock;
mod cli_summary;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::{Parser, Subcommand};
use flashgate::config::{Config, IdRange};
use flashgate::edge::{self, Gateway};

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
    },
    /// Check a configuration and print what it would run.
    Check {
        /// Configuration file.
        #[arg(long, short, default_value = "conf/flashgate.yaml")]
        config: PathBuf,
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
}

#[derive(Subcommand)]
enum StockAction {
    /// Seed each configured sale's stock (refuses a sale that has buyers unless --force).
    Load {
        /// Configuration file.
        #[arg(long, short, default_value = "conf/flashgate.yaml")]
        config: PathBuf,
        /// Start sales with buyers over: drops their buyers and ledger.
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
    flashgate::logging::init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flashgate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run {
            config,
            require_secrets,
        } => {
            let config = Config::load(&config)?;
            if !config.secrets.development.is_empty() {
                if require_secrets {
                    anyhow::bail!(
                        "development secrets in use ({}); set FLASHGATE_LOGIN_SECRET and FLASHGATE_EDGE_SECRET",
                        config.secrets.development.join(", ")
                    );
                }
                warn_development_secrets(&config);
            }
            let gateway = Gateway::build(config)?;
            edge::run(gateway)
        }
        Command::Check { config } => {
            let config = Config::load(&config)?;
            let gateway = Gateway::build(config)?;
            print!("{}", cli_summary::summary(&gateway));
            Ok(())
        }
        Command::Stock { action } => match action {
            StockAction::Load { config, force } => cli_stock::load(&Config::load(&config)?, force),
            StockAction::Show { config } => cli_stock::show(&Config::load(&config)?),
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
    }
}

fn warn_development_secrets(config: &Config) {
    let bar = "!".repeat(78);
    tracing::warn!(
        "\n{bar}\n!! DEVELOPMENT SECRETS IN USE ({}): anyone can mint logins and forge sale paths.\n\
         !! Set FLASHGATE_LOGIN_SECRET and FLASHGATE_EDGE_SECRET (32+ bytes each) before a real sale,\n\
         !! and start with --require-secrets so this can never happen unnoticed.\n{bar}",
        config.secrets.development.join(", ")
    );
}

fn mint_tokens(config: &Config, uid: &str, prefix: &str, ttl: Duration) -> anyhow::Result<()> {
    use jsonwebtoken::{encode, EncodingKey, Header};
    use std::io::Write;
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("system clock before 1970")?
        .saturating_add(ttl)
        .as_secs();
    let key = EncodingKey::from_secret(config.secrets.login.bytes());
    let uids: Box<dyn Iterator<Item = String>> = match uid.parse::<IdRange>() {
        Ok(range) => Box::new((range.first..=range.last).map(move |n| format!("{prefix}{n}"))),
        Err(_) => Box::new(std::iter::once(format!("{prefix}{uid}"))),
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for sub in uids {
        let claims = serde_json::json!({ "sub": sub, "exp": exp });
        let token = encode(&Header::default(), &claims, &key).context("signing a token")?;
        writeln!(out, "{token}")?;
    }
    out.flush()?;
    Ok(())
}
