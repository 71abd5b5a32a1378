//! Every name a sale has in a store, built once per sale when the gateway starts and handed to
//! each store call, so the buy path formats no key. In Redis the names of one sale share the
//! hash tag `{product}` — `flashgate:{42}:stock`, `:buyers`, `:ledger`, `:ledger:dead`,
//! `:meta`, `:confirmed`, `:pass:<key>`, `:queue`,
//! `:queue:members`, `:queue:window` — so every script of a sale runs on one Cluster slot.
//! Besides them, one key lists every sale: [`SALES_REGISTRY`], the set of product ids
//! `flashgate stock load` ever loaded, which the order backend reads to find the ledgers (never
//! a SCAN of the keyspace), and the counts of `scope: cluster` limits ([`rate_count`]). The
//! embedded store needs only the product. No other file spells a key.

/// The set of every product id `flashgate stock load` loaded (a key of its own: on a Cluster it
/// lives on one node, apart from the sales it lists).
pub const SALES_REGISTRY: &str = "flashgate:sales";

/// The count of `key` (a UID, an address, or `*`) under the `scope: cluster` limit `rule` in
/// wall-clock window `window`: `flashgate:rl:{rule}:window:key`. One rule's counts share a
/// hash tag, so a sync's pipeline goes to one Cluster node.
pub fn rate_count(rule: &str, window: u64, key: &str) -> String {
    format!("flashgate:rl:{{{rule}}}:{window}:{key}")
}

/// The names of one sale's state in a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaleKeys {
    /// The product on sale.
    pub product: u64,
    /// Units left.
    pub stock: String,
    /// uid → reservation id of every user holding a unit.
    pub buyers: String,
    /// Stream of every reservation made.
    pub ledger: String,
    /// Ledger entries the order backend gave up on, held for `flashgate-orders reconcile`.
    pub dead: String,
    /// Sale metadata (the stock `flashgate stock load` configured).
    pub meta: String,
    /// Reservations an order holds (see `lua/confirm.lua`).
    pub confirmed: String,
    /// Prefix of the sale's used-captcha keys (`…:pass:`), completed by the captcha's key.
    pub pass_prefix: String,
    /// Prefix of the sale's attempt keys (`…:attempt:`), completed by an attempt id: what a
    /// reserve attempt took (its reservation id), or `fenced` (see `lua/fence.lua`).
    pub attempt_prefix: String,
    /// The waiting room's counters and frontier (a hash: `pre`, `post`, `sealed`, `admitted`,
    /// `credit`, `last`, `window_total`).
    pub queue: String,
    /// The waiting room's uid → `{place}:{joined_ms}`.
    pub queue_members: String,
    /// The waiting room's recent admissions, `{at_ms}:{count}:{buyers}`, oldest first.
    pub queue_window: String,
}

impl SaleKeys {
    /// The names of `product`'s sale.
    pub fn of(product: u64) -> Self {
        let k = |part: &str| format!("flashgate:{{{product}}}:{part}");
        SaleKeys {
            product,
            stock: k("stock"),
            buyers: k("buyers"),
            ledger: k("ledger"),
            dead: k("ledger:dead"),
            meta: k("meta"),
            confirmed: k("confirmed"),
            pass_prefix: k("pass:"),
            attempt_prefix: k("attempt:"),
            queue: k("queue"),
            queue_members: k("queue:members"),
            queue_window: k("queue:window"),
        }
    }

    /// The key that marks captcha `key` of this sale used.
    pub fn pass(&self, key: &str) -> String {
        joined(&self.pass_prefix, key)
    }

    /// The key of reserve attempt `attempt` of this sale.
    pub fn attempt(&self, attempt: &str) -> String {
        joined(&self.attempt_prefix, attempt)
    }
}

fn joined(prefix: &str, rest: &str) -> String {
    let mut name = String::with_capacity(prefix.len() + rest.len());
    name.push_str(prefix);
    name.push_str(rest);
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_a_sale_share_one_hash_tag() {
        let k = SaleKeys::of(42);
        for key in [
            &k.stock,
            &k.buyers,
            &k.ledger,
            &k.dead,
            &k.meta,
            &k.confirmed,
            &k.queue,
            &k.queue_members,
            &k.queue_window,
            &k.pass("p:abc"),
            &k.attempt("0f"),
        ] {
            assert!(key.contains("{42}"), "{key}");
        }
        assert_eq!(k.stock, "flashgate:{42}:stock");
        assert_eq!(k.pass("p:abc"), "flashgate:{42}:pass:p:abc");
    }
}
