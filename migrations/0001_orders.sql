-- flashgate-orders schema. Portable between SQLite and PostgreSQL: BIGINT and TEXT only.
-- The database is the last safeguard of the sale: one active order per user and product
-- (a partial unique index), and never more sold than stock (a guarded update and a CHECK).

CREATE TABLE IF NOT EXISTS sales (
    product BIGINT PRIMARY KEY,
    stock   BIGINT NOT NULL,
    sold    BIGINT NOT NULL DEFAULT 0,
    CHECK (sold >= 0),
    CHECK (sold <= stock)
);

CREATE TABLE IF NOT EXISTS orders (
    id            TEXT PRIMARY KEY,        -- the edge's reservation id
    uid           TEXT NOT NULL,
    product       BIGINT NOT NULL REFERENCES sales (product),
    status        TEXT NOT NULL CHECK (status IN ('pending', 'paid', 'cancelled')),
    source        TEXT NOT NULL,           -- forward | ledger
    created_ms    BIGINT NOT NULL,
    expires_ms    BIGINT NOT NULL,         -- unpaid by then: cancelled, unit returned
    settled_ms    BIGINT,                  -- when paid or cancelled
    unit_returned BIGINT NOT NULL DEFAULT 0 -- 1 once a cancelled order's unit is back in Redis
);

CREATE UNIQUE INDEX IF NOT EXISTS orders_one_active_per_user
    ON orders (uid, product) WHERE status <> 'cancelled';
CREATE INDEX IF NOT EXISTS orders_by_status_expiry ON orders (status, expires_ms);
CREATE INDEX IF NOT EXISTS orders_by_user ON orders (uid);

-- Signatures of accepted order requests, kept while their timestamp is fresh: a request seen
-- twice is a replay.
CREATE TABLE IF NOT EXISTS used_signatures (
    signature  TEXT PRIMARY KEY,
    expires_ms BIGINT NOT NULL
);
