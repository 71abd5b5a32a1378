//! `flashgate stock load|show`: seed the configured sales into the Redis store, and print each
//! sale's remaining units, buyers and ledger length.

use anyhow::{bail, Context};
use flashgate::config::{Config, Store};
use flashgate::stock::redis::sales::{Load, RedisSales};
use flashgate::stock::redis::Target;
use flashgate::stock::SaleKeys;

fn store_of(config: &Config) -> anyhow::Result<RedisSales> {
    // Administrative calls may wait longer than a buyer would.
    let timeout = std::time::Duration::from_secs(5);
    match &config.store {
        Store::Redis { url, .. } => Ok(RedisSales::new(Target::Single(url.clone()), timeout)),
        Store::Cluster { urls, .. } => Ok(RedisSales::new(Target::Cluster(urls.clone()), timeout)),
        Store::Memory { .. } => bail!(
            "{}: store kind memory keeps stock inside the running gateway, seeded from the \
             configuration at start; stock load/show are for store: {{kind: redis}}",
            config.file.display()
        ),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting a runtime")
}

/// Seed every configured sale; refuses sales with buyers unless `force`.
pub fn load(config: &Config, force: bool) -> anyhow::Result<()> {
    let store = store_of(config)?;
    runtime()?.block_on(async {
        let mut refused = 0;
        for sale in &config.sales {
            match store.load(&SaleKeys::of(sale.product), sale.stock, force).await? {
                Load::Loaded { dropped: 0 } => {
                    println!("product {}: loaded {} units", sale.product, sale.stock)
                }
                Load::Loaded { dropped } => println!(
                    "product {}: loaded {} units (forced: dropped {dropped} buyers and the ledger)",
                    sale.product, sale.stock
                ),
                Load::HasBuyers(n) => {
                    refused += 1;
                    eprintln!(
                        "product {}: NOT loaded: the sale has {n} buyers (use --force to start it over)",
                        sale.product
                    );
                }
            }
        }
        if refused > 0 {
            bail!("{refused} sale(s) not loaded");
        }
        Ok(())
    })
}

/// Print remaining units, buyers and ledger length of every configured sale.
pub fn show(config: &Config) -> anyhow::Result<()> {
    let store = store_of(config)?;
    runtime()?.block_on(async {
        println!(
            "{:<10} {:>10} {:>10} {:>10} {:>10}",
            "product", "configured", "remaining", "buyers", "ledger"
        );
        for sale in &config.sales {
            match store.stock(sale.product).await? {
                Some(s) => println!(
                    "{:<10} {:>10} {:>10} {:>10} {:>10}",
                    sale.product, sale.stock, s.remaining, s.buyers, s.ledger
                ),
                None => println!(
                    "{:<10} {:>10} {:>10}",
                    sale.product, sale.stock, "not loaded"
                ),
            }
        }
        Ok(())
    })
}
