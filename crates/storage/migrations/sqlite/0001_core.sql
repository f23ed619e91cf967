-- Core schema of emag-sync (SQLite). Times are Unix milliseconds (UTC); eMAG's own
-- datetimes stay the text eMAG sent ("YYYY-mm-dd HH:ii:ss", Bucharest local), which sorts
-- correctly. Money is the exact decimal text eMAG sent. Keep in step with ../postgres.

CREATE TABLE accounts (
    name        TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    marketplace TEXT NOT NULL,
    base_url    TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE offers (
    account           TEXT NOT NULL REFERENCES accounts(name),
    id                INTEGER NOT NULL,
    part_number       TEXT,
    part_number_key   TEXT,
    name              TEXT,
    brand             TEXT,
    status            INTEGER,
    sale_price        TEXT,
    recommended_price TEXT,
    currency          TEXT,
    vat_id            INTEGER,
    general_stock     INTEGER,
    estimated_stock   INTEGER,
    ean               TEXT NOT NULL,
    data              TEXT NOT NULL,
    content_hash      INTEGER NOT NULL,
    removed           INTEGER NOT NULL DEFAULT 0,
    first_seen_at     INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    removed_at        INTEGER,
    PRIMARY KEY (account, id)
) WITHOUT ROWID;

CREATE TABLE orders (
    account         TEXT NOT NULL REFERENCES accounts(name),
    id              INTEGER NOT NULL,
    order_type      INTEGER NOT NULL,
    status          INTEGER,
    date            TEXT,
    modified        TEXT,
    payment_mode_id INTEGER,
    customer_id     INTEGER,
    customer_name   TEXT,
    data            TEXT NOT NULL,
    content_hash    INTEGER NOT NULL,
    first_seen_at   INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (account, id)
) WITHOUT ROWID;
CREATE INDEX orders_modified ON orders (account, order_type, modified);

CREATE TABLE order_lines (
    account     TEXT NOT NULL,
    order_id    INTEGER NOT NULL,
    line_id     INTEGER NOT NULL,
    product_id  INTEGER,
    part_number TEXT,
    name        TEXT,
    quantity    INTEGER,
    sale_price  TEXT,
    currency    TEXT,
    vat         TEXT,
    status      INTEGER,
    PRIMARY KEY (account, order_id, line_id),
    FOREIGN KEY (account, order_id) REFERENCES orders(account, id) ON DELETE CASCADE
) WITHOUT ROWID;

CREATE TABLE returns (
    account      TEXT NOT NULL REFERENCES accounts(name),
    emag_id      INTEGER NOT NULL,
    order_id     INTEGER,
    status       INTEGER,
    date         TEXT,
    data         TEXT NOT NULL,
    content_hash INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (account, emag_id)
) WITHOUT ROWID;

CREATE TABLE reference_data (
    marketplace TEXT NOT NULL,
    kind        TEXT NOT NULL,
    id          INTEGER NOT NULL,
    name        TEXT,
    data        TEXT NOT NULL,
    content_hash INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (marketplace, kind, id)
) WITHOUT ROWID;

CREATE TABLE runs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    account          TEXT NOT NULL REFERENCES accounts(name),
    kind             TEXT NOT NULL,
    trigger          TEXT NOT NULL,
    state            TEXT NOT NULL,
    attempt          INTEGER NOT NULL DEFAULT 1,
    full_scan        INTEGER NOT NULL DEFAULT 0,
    holder           TEXT,
    heartbeat_at     INTEGER,
    created_at       INTEGER NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER,
    checkpoint_page  INTEGER NOT NULL DEFAULT 0,
    total_items      INTEGER,
    pages            INTEGER NOT NULL DEFAULT 0,
    items_read       INTEGER NOT NULL DEFAULT 0,
    created          INTEGER NOT NULL DEFAULT 0,
    updated          INTEGER NOT NULL DEFAULT 0,
    unchanged        INTEGER NOT NULL DEFAULT 0,
    removed          INTEGER NOT NULL DEFAULT 0,
    requests         INTEGER NOT NULL DEFAULT 0,
    rate_limit_waits INTEGER NOT NULL DEFAULT 0,
    retries          INTEGER NOT NULL DEFAULT 0,
    error_class      TEXT,
    error_message    TEXT,
    emag_messages    TEXT,
    note             TEXT
);
-- One active run per (account, kind), enforced here rather than hoped for.
CREATE UNIQUE INDEX runs_one_active ON runs (account, kind) WHERE state IN ('queued', 'running', 'interrupted');
CREATE INDEX runs_recent ON runs (account, kind, id);

-- Offer ids seen by a scan, one row per page, so a resumed scan knows what it saw.
CREATE TABLE scan_pages (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    page   INTEGER NOT NULL,
    ids    BLOB NOT NULL,
    PRIMARY KEY (run_id, page)
) WITHOUT ROWID;

CREATE TABLE sync_state (
    account    TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (account, key)
) WITHOUT ROWID;
