//! A sale's keys in Redis beyond buying: seeding or restocking the sale (`flashgate stock load`,
//! `lua/load.lua`) and listing it in the sales registry, reading it (`stock show`, reconcile), and the order backend's side of the
//! protocol — claiming a reservation for an order before writing it (`lua/confirm.lua`), so an
//! edge can never free a unit an order holds; returning a cancelled order's unit
//! (`lua/release.lua` as the order backend); rewriting a sale from the order database
//! (`lua/reconcile.lua`). The edge's buy path never uses this type.

use std::time::Duration;

use redis::Script;

use super::client::RedisClient;
use super::{discard_invocation, read_stock, release_invocation};
use crate::config::Target;
use crate::stock::keys::SALES_REGISTRY;
use crate::stock::{Reservation, SaleKeys, SaleStock, StoreError};

/// What `load` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Load {
    /// The sale had no buyers: every unit is on sale.
    Loaded,
    /// The sale was restocked (`force`): these buyers keep their units, the rest is on sale.
    Restocked {
        /// Units orders hold.
        held: u64,
    },
    /// Refused: the sale has this many buyers and `force` was not given.
    HasBuyers(u64),
    /// Refused: the new total is below the units this many buyers hold.
    BelowHeld(u64),
}

/// What `restore` did (see `lua/restore.lua`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restore {
    /// The buyer holds the unit again; one unit was taken off sale.
    Restored,
    /// The buyer holds the unit again; no unit was left on sale to take back.
    Short,
    /// The buyer held it already.
    Held,
    /// The buyer holds another reservation (in flight); nothing changed.
    Other,
}

/// Sales in Redis, as the CLI and the order backend see them.
pub struct RedisSales {
    client: RedisClient,
    load: Script,
    confirm: Script,
    release: Script,
    reconcile: Script,
    discard: Script,
    restore: Script,
    /// Loaded with `load` so the first buy after a seed is one round trip.
    reserve: Script,
}

impl RedisSales {
    /// Sales at `target`, calls bounded by `timeout`. Connects on first use.
    pub fn new(target: Target, timeout: Duration) -> Self {
        RedisSales {
            client: RedisClient::new(target, timeout),
            load: Script::new(include_str!("../../../lua/load.lua")),
            confirm: Script::new(include_str!("../../../lua/confirm.lua")),
            release: Script::new(include_str!("../../../lua/release.lua")),
            reconcile: Script::new(include_str!("../../../lua/reconcile.lua")),
            discard: Script::new(include_str!("../../../lua/discard.lua")),
            restore: Script::new(include_str!("../../../lua/restore.lua")),
            reserve: Script::new(include_str!("../../../lua/reserve.lua")),
        }
    }

    /// Whether Redis answers.
    pub async fn ready(&self) -> bool {
        self.client.ping().await
    }

    /// Seed `sale` with `units` in all (`lua/load.lua`). A sale with buyers is refused unless
    /// `force`, which restocks it: every buyer keeps their unit. The sale is entered in the
    /// registry the order backend reads ([`SALES_REGISTRY`]) whatever the answer, and the
    /// reserve, release and confirm scripts are loaded, so the first buy after a seed is one
    /// round trip.
    pub async fn load(&self, sale: &SaleKeys, units: u64, force: bool) -> Result<Load, StoreError> {
        let mut register = redis::pipe();
        register.sadd(SALES_REGISTRY, sale.product).ignore();
        self.client.query::<()>(register).await?;
        let mut inv = self.load.prepare_invoke();
        inv.key(&sale.stock)
            .key(&sale.buyers)
            .key(&sale.meta)
            .arg(units)
            .arg(if force { "1" } else { "0" });
        let (answer, n): (String, u64) = self.client.invoke(inv).await?;
        for script in [&self.reserve, &self.release, &self.confirm] {
            self.client.load_script(script).await?;
        }
        match answer.as_str() {
            "loaded" => Ok(Load::Loaded),
            "restocked" => Ok(Load::Restocked { held: n }),
            "has_buyers" => Ok(Load::HasBuyers(n)),
            "below_held" => Ok(Load::BelowHeld(n)),
            _ => Err(StoreError::Protocol {
                script: "load.lua",
                answer: format!("{answer} {n}"),
            }),
        }
    }

    /// Every product `flashgate stock load` entered in the registry.
    pub async fn registered(&self) -> Result<Vec<u64>, StoreError> {
        let mut pipe = redis::pipe();
        pipe.smembers(SALES_REGISTRY);
        let (members,): (Vec<String>,) = self.client.query(pipe).await?;
        Ok(members.iter().filter_map(|m| m.parse().ok()).collect())
    }

    /// Claim `reservation` for an order. False when the reservation no longer holds a unit.
    pub async fn confirm(&self, reservation: &Reservation) -> Result<bool, StoreError> {
        let sale = SaleKeys::of(reservation.product);
        let mut inv = self.confirm.prepare_invoke();
        inv.key(&sale.buyers)
            .key(&sale.confirmed)
            .arg(&reservation.uid)
            .arg(&reservation.id);
        let held: i64 = self.client.invoke(inv).await?;
        Ok(held == 1)
    }

    /// Return the unit of a cancelled order (returns a unit even when the reservation is
    /// confirmed). True the first time only.
    pub async fn release_order(&self, reservation: &Reservation) -> Result<bool, StoreError> {
        let sale = SaleKeys::of(reservation.product);
        let inv = release_invocation(&self.release, &sale, reservation, "order");
        let returned: i64 = self.client.invoke(inv).await?;
        Ok(returned == 1)
    }

    /// Take the unit of a reservation the database refused for want of stock out of the sale,
    /// without putting it back on sale (`lua/discard.lua` as the order backend: it may be
    /// confirmed). True the first time only.
    pub async fn discard_order(&self, reservation: &Reservation) -> Result<bool, StoreError> {
        let sale = SaleKeys::of(reservation.product);
        let inv = discard_invocation(&self.discard, &sale, reservation, "order");
        let discarded: i64 = self.client.invoke(inv).await?;
        Ok(discarded == 1)
    }

    /// Put back the unit of an order Redis lost (`lua/restore.lua`).
    pub async fn restore(&self, reservation: &Reservation) -> Result<Restore, StoreError> {
        let sale = SaleKeys::of(reservation.product);
        let mut inv = self.restore.prepare_invoke();
        inv.key(&sale.stock)
            .key(&sale.buyers)
            .key(&sale.confirmed)
            .key(&sale.meta)
            .arg(&reservation.uid)
            .arg(&reservation.id);
        let answer: String = self.client.invoke(inv).await?;
        match answer.as_str() {
            "restored" => Ok(Restore::Restored),
            "short" => Ok(Restore::Short),
            "held" => Ok(Restore::Held),
            "other" => Ok(Restore::Other),
            _ => Err(StoreError::Protocol {
                script: "restore.lua",
                answer,
            }),
        }
    }

    /// The stock `flashgate stock load` configured for `product`, if it was loaded.
    pub async fn configured_stock(&self, product: u64) -> Result<Option<u64>, StoreError> {
        let mut pipe = redis::pipe();
        pipe.hget(SaleKeys::of(product).meta, "stock");
        let (stock,): (Option<u64>,) = self.client.query(pipe).await?;
        Ok(stock)
    }

    /// Units left, buyers and ledger length of `product`'s sale, if it exists.
    pub async fn stock(&self, product: u64) -> Result<Option<SaleStock>, StoreError> {
        read_stock(&self.client, &SaleKeys::of(product)).await
    }

    /// Rewrite `product`'s stock and buyers: `remaining` units, `holders` as (uid, reservation).
    pub async fn rewrite(
        &self,
        product: u64,
        remaining: u64,
        holders: &[(String, String)],
    ) -> Result<u64, StoreError> {
        let sale = SaleKeys::of(product);
        let mut inv = self.reconcile.prepare_invoke();
        inv.key(&sale.stock)
            .key(&sale.buyers)
            .key(&sale.confirmed)
            .arg(remaining);
        for (uid, id) in holders {
            inv.arg(uid).arg(id);
        }
        self.client.invoke(inv).await
    }

    /// Units left and every buyer of `product`, read together (`MULTI`: no reservation or
    /// return in between), or None when the sale does not exist.
    pub async fn snapshot(
        &self,
        product: u64,
    ) -> Result<Option<(u64, Vec<(String, String)>)>, StoreError> {
        let sale = SaleKeys::of(product);
        let mut pipe = redis::pipe();
        pipe.atomic().get(&sale.stock).hgetall(&sale.buyers);
        let (remaining, buyers): (Option<i64>, Vec<(String, String)>) =
            self.client.query(pipe).await?;
        Ok(remaining.map(|r| (u64::try_from(r).unwrap_or(0), buyers)))
    }

    /// Every buyer of `product` as (uid, reservation).
    pub async fn buyers(&self, product: u64) -> Result<Vec<(String, String)>, StoreError> {
        let mut pipe = redis::pipe();
        pipe.hgetall(SaleKeys::of(product).buyers);
        let (all,): (Vec<(String, String)>,) = self.client.query(pipe).await?;
        Ok(all)
    }
}
