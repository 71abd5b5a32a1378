//! `flashgate stock load|show`: seed the configured sales into the Redis store (or restock a
//! sale that has buyers, with `--force`), and print each sale's remaining units, buyers and
//! ledger length.

use anyhow::{bail, Context};
use flashgate::config::{Config, Store};
use flashgate::stock::redis::sales::{Load, RedisSales};
use flashgate::stock::SaleKeys;

fn store_of(config: &Config) -> anyhow::Result<RedisSales> {
    // Administrative calls may wait longer than a buyer would.
    let timeout = std::time::Duration::from_secs(5);
    match &config.store {
        Store::Redis { target, .. } => Ok(RedisSales::new(target.clone(), timeout)),
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

/// Seed every configured sale; a sale with buyers is refused unless `force`, which restocks it
/// to the configured total, every buyer keeping their unit.
pub fn load(config: &Config, force: bool) -> anyhow::Result<()> {
    let store = store_of(config)?;
    runtime()?.block_on(async {
        let mut refused = 0;
        for sale in &config.sales {
            let product = sale.product;
            match store.load(&SaleKeys::of(product), sale.stock, force).await? {
                Load::Loaded => println!("product {product}: loaded {} units", sale.stock),
                Load::Restocked { held } => println!(
                    "product {product}: restocked to {} units: {held} held by buyers, {} on sale",
                    sale.stock,
                    sale.stock - held
                ),
                Load::HasBuyers(n) => {
                    refused += 1;
                    eprintln!(
                        "product {product}: NOT loaded: the sale has {n} buyers (--force restocks it to {} units, keeping every buyer's unit)",
                        sale.stock
                    );
                }
                Load::BelowHeld(n) => {
                    refused += 1;
                    eprintln!(
                        "product {product}: NOT restocked: {n} units are held by buyers, more than the {} configured (nothing was changed)",
                        sale.stock
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
