//! The order database, SQLite (default, one instance) or PostgreSQL (several instances), through
//! sqlx's `Any` driver with the portable schema in `migrations/`. Every state change is one
//! guarded statement or one short transaction, so concurrent backends and the ledger consumer
//! can race freely: an order is inserted once (its id is the reservation id), never more units
//! are sold than stock, a user holds one active order per product, and an order is paid or
//! cancelled, never both.

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use super::model::{Order, SaleSummary, Source, Status};
use crate::stock::Reservation;

/// A database failure.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The driver failed.
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    /// Migrations failed.
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored value is not what the schema allows.
    #[error("database holds a bad value: {0}")]
    Corrupt(String),
    /// An insert collided with a concurrent one that then vanished (rolled back): try again.
    #[error("order {0} collided with a concurrent insert that did not commit; try again")]
    Conflict(String),
}

/// Why an insert made no new order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The sale has sold all its stock (the last safeguard against oversell tripped).
    SoldOut,
    /// The user already holds an active order for this product.
    Duplicate,
}

/// The result of [`Db::insert_order`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Insert {
    /// A new order.
    Created(Order),
    /// An order with this id existed already.
    Existing(Order),
    /// The safeguards refused it.
    Refused(Refusal),
}

/// The result of [`Db::set_stock`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StockChange {
    /// The stock was `from` and is now the new one.
    Changed {
        /// The stock before.
        from: i64,
    },
    /// It already was.
    Same,
    /// No sale row yet (made with the first order, from the configured stock).
    NoSale,
    /// Refused: more orders hold a unit than the new stock.
    BelowSold {
        /// Units held by orders.
        sold: i64,
    },
}

/// The result of [`Db::pay`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payment {
    /// Paid now, or paid before (idempotent).
    Paid(Order),
    /// Cancelled, or past its deadline: too late to pay.
    TooLate(Order),
    /// No such order.
    NotFound,
}

/// The order database.
#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
}

const ORDER_COLUMNS: &str = "id, uid, product, status, source, created_ms, expires_ms, settled_ms";

fn order_of(row: &AnyRow) -> Result<Order, DbError> {
    let status: String = row.try_get("status")?;
    Ok(Order {
        id: row.try_get("id")?,
        uid: row.try_get("uid")?,
        product: u64::try_from(row.try_get::<i64, _>("product")?)
            .map_err(|_| DbError::Corrupt("negative product".into()))?,
        status: Status::parse(&status).ok_or_else(|| DbError::Corrupt(status.clone()))?,
        source: row.try_get("source")?,
        created_ms: row.try_get("created_ms")?,
        expires_ms: row.try_get("expires_ms")?,
        settled_ms: row.try_get("settled_ms")?,
    })
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

impl Db {
    /// Connect to `url` (`sqlite://path` — created if missing — or `postgres://...`) and bring
    /// the schema up to date.
    pub async fn connect(url: &str) -> Result<Db, DbError> {
        sqlx::any::install_default_drivers();
        let sqlite = url.starts_with("sqlite:");
        let url = if sqlite && !url.contains("mode=") {
            format!("{url}{}mode=rwc", if url.contains('?') { "&" } else { "?" })
        } else {
            url.to_string()
        };
        let pool = AnyPoolOptions::new()
            .max_connections(if sqlite { 4 } else { 16 })
            // A database that does not hand out a connection soon is down for this request: a
            // 503 now, and the ledger consumer's backoff, beat everyone waiting 30 s.
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect(&url)
            .await?;
        if sqlite {
            // Readers never block the writer; the writer waits for the lock instead of failing.
            sqlx::query("PRAGMA journal_mode=WAL")
                .execute(&pool)
                .await?;
        }
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Db { pool })
    }

    /// Create the sale row for `product` with `stock` units, if it does not exist.
    pub async fn ensure_sale(&self, product: u64, stock: u64) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO sales (product, stock, sold) VALUES ($1, $2, 0) ON CONFLICT (product) DO NOTHING",
        )
        .bind(product as i64)
        .bind(stock as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Set the stock of `product`'s sale, unless fewer than its orders hold.
    pub async fn set_stock(&self, product: u64, stock: u64) -> Result<StockChange, DbError> {
        let Some(row) = sqlx::query("SELECT stock, sold FROM sales WHERE product = $1")
            .bind(product as i64)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(StockChange::NoSale);
        };
        let (from, sold): (i64, i64) = (row.try_get("stock")?, row.try_get("sold")?);
        let to = i64::try_from(stock).map_err(|_| DbError::Corrupt(format!("stock {stock}")))?;
        if from == to {
            return Ok(StockChange::Same);
        }
        let done = sqlx::query("UPDATE sales SET stock = $2 WHERE product = $1 AND sold <= $2")
            .bind(product as i64)
            .bind(to)
            .execute(&self.pool)
            .await?;
        Ok(if done.rows_affected() == 1 {
            StockChange::Changed { from }
        } else {
            StockChange::BelowSold { sold }
        })
    }

    /// Whether a sale row exists for `product`.
    pub async fn has_sale(&self, product: u64) -> Result<bool, DbError> {
        let row = sqlx::query("SELECT product FROM sales WHERE product = $1")
            .bind(product as i64)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// Insert a pending order for `r`, once: an existing order with the same id is returned;
    /// a sale with no unit left, or a user already holding an active order, is refused.
    pub async fn insert_order(
        &self,
        r: &Reservation,
        source: Source,
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<Insert, DbError> {
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO orders (id, uid, product, status, source, created_ms, expires_ms) \
             VALUES ($1, $2, $3, 'pending', $4, $5, $6) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&r.id)
        .bind(&r.uid)
        .bind(r.product as i64)
        .bind(source.name())
        .bind(now_ms)
        .bind(expires_ms)
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(done) if done.rows_affected() == 0 => {
                tx.rollback().await?;
                return match self.order(&r.id).await? {
                    Some(existing) => Ok(Insert::Existing(existing)),
                    None => Err(DbError::Corrupt(format!("order {} vanished", r.id))),
                };
            }
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                // The other unique index: this user holds an active order for the product.
                // That order may be this very reservation's, committed by a concurrent insert
                // (the forward and the ledger consumer racing; PostgreSQL checks that index
                // before the id's), and then this is no refusal at all.
                tx.rollback().await?;
                if let Some(existing) = self.order(&r.id).await? {
                    return Ok(Insert::Existing(existing));
                }
                return if self.holds_active(&r.uid, r.product).await? {
                    Ok(Insert::Refused(Refusal::Duplicate))
                } else {
                    Err(DbError::Conflict(r.id.clone()))
                };
            }
            Err(e) => return Err(e.into()),
        }
        let sold =
            sqlx::query("UPDATE sales SET sold = sold + 1 WHERE product = $1 AND sold < stock")
                .bind(r.product as i64)
                .execute(&mut *tx)
                .await?;
        if sold.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(Insert::Refused(Refusal::SoldOut));
        }
        tx.commit().await?;
        match self.order(&r.id).await? {
            Some(order) => Ok(Insert::Created(order)),
            None => Err(DbError::Corrupt(format!("order {} vanished", r.id))),
        }
    }

    /// Whether `uid` holds an active (pending or paid) order for `product`.
    pub async fn holds_active(&self, uid: &str, product: u64) -> Result<bool, DbError> {
        let row = sqlx::query(
            "SELECT id FROM orders WHERE uid = $1 AND product = $2 AND status <> 'cancelled'",
        )
        .bind(uid)
        .bind(product as i64)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// One order.
    pub async fn order(&self, id: &str) -> Result<Option<Order>, DbError> {
        let row = sqlx::query(&format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(order_of).transpose()
    }

    /// A user's orders, newest first.
    pub async fn orders_of(&self, uid: &str) -> Result<Vec<Order>, DbError> {
        let rows = sqlx::query(&format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE uid = $1 ORDER BY created_ms DESC, id"
        ))
        .bind(uid)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(order_of).collect()
    }

    /// Pay order `id` at `now_ms` if it is pending and within its deadline.
    pub async fn pay(&self, id: &str, now_ms: i64) -> Result<Payment, DbError> {
        sqlx::query(
            "UPDATE orders SET status = 'paid', settled_ms = $2 \
             WHERE id = $1 AND status = 'pending' AND expires_ms > $2",
        )
        .bind(id)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(match self.order(id).await? {
            None => Payment::NotFound,
            Some(o) if o.status == Status::Paid => Payment::Paid(o),
            Some(o) => Payment::TooLate(o),
        })
    }

    /// Pending orders whose deadline has passed, at most `limit`.
    pub async fn expired(&self, now_ms: i64, limit: i64) -> Result<Vec<Order>, DbError> {
        let rows = sqlx::query(&format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE status = 'pending' AND expires_ms <= $1 \
             ORDER BY expires_ms LIMIT $2"
        ))
        .bind(now_ms)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(order_of).collect()
    }

    /// Cancel order `id` if it is still pending, giving its unit back to the sale's count.
    /// True when this call cancelled it.
    pub async fn cancel(&self, id: &str, product: u64, now_ms: i64) -> Result<bool, DbError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE orders SET status = 'cancelled', settled_ms = $2 WHERE id = $1 AND status = 'pending'",
        )
        .bind(id)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query("UPDATE sales SET sold = sold - 1 WHERE product = $1")
            .bind(product as i64)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Cancelled orders whose unit is not yet back in Redis, at most `limit`.
    pub async fn units_to_return(&self, limit: i64) -> Result<Vec<Order>, DbError> {
        let rows = sqlx::query(&format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE status = 'cancelled' AND unit_returned = 0 LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(order_of).collect()
    }

    /// Record that a cancelled order's unit is back in Redis.
    pub async fn mark_unit_returned(&self, id: &str) -> Result<(), DbError> {
        sqlx::query("UPDATE orders SET unit_returned = 1 WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Record a request signature; false if it was recorded before (a replay).
    pub async fn first_use(&self, signature: &str, expires_ms: i64) -> Result<bool, DbError> {
        let done = sqlx::query(
            "INSERT INTO used_signatures (signature, expires_ms) VALUES ($1, $2) \
             ON CONFLICT (signature) DO NOTHING",
        )
        .bind(signature)
        .bind(expires_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Forget signatures whose freshness window is over.
    pub async fn forget_signatures(&self, now_ms: i64) -> Result<u64, DbError> {
        let done = sqlx::query("DELETE FROM used_signatures WHERE expires_ms < $1")
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// A sale's counts, or None if the backend has no such sale.
    pub async fn sale(&self, product: u64) -> Result<Option<SaleSummary>, DbError> {
        let Some(row) = sqlx::query("SELECT stock, sold FROM sales WHERE product = $1")
            .bind(product as i64)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let count = |status: &'static str| {
            sqlx::query("SELECT COUNT(*) AS n FROM orders WHERE product = $1 AND status = $2")
                .bind(product as i64)
                .bind(status)
        };
        let mut counts = [0i64; 3];
        for (slot, status) in counts.iter_mut().zip(["paid", "cancelled", "pending"]) {
            *slot = count(status).fetch_one(&self.pool).await?.try_get("n")?;
        }
        Ok(Some(SaleSummary {
            product,
            stock: row.try_get("stock")?,
            sold: row.try_get("sold")?,
            paid: counts[0],
            cancelled: counts[1],
            pending: counts[2],
        }))
    }

    /// Every product with a sale row.
    pub async fn products(&self) -> Result<Vec<u64>, DbError> {
        let rows = sqlx::query("SELECT product FROM sales ORDER BY product")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok(r.try_get::<i64, _>("product")? as u64))
            .collect()
    }

    /// The (uid, reservation) of every order that holds a unit (pending or paid).
    pub async fn holders(&self, product: u64) -> Result<Vec<(String, String)>, DbError> {
        let rows = sqlx::query(
            "SELECT uid, id FROM orders WHERE product = $1 AND status <> 'cancelled' ORDER BY id",
        )
        .bind(product as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("uid")?, r.try_get("id")?)))
            .collect()
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }
}
