-- Offers, orders, returns and reference data in rowid tables (issue 11, point 5). A WITHOUT
-- ROWID table keeps whole rows in its primary-key B-tree, which suits rows much smaller than
-- a page (SQLite keeps at most about 1 KB of a row in such a 4 KiB page, the rest in overflow
-- pages); these rows carry the JSON eMAG sent beside the columns (an offer about 1.4 KB, an
-- order several), so inserting a page of them split leaves and chained overflow pages all the
-- time. In a rowid table the rows go to the table's B-tree in insertion order and the key to a
-- small index:
-- 100,000 offer upserts (100 per statement, 8 statements per transaction) took 3.8–4.6 s in
-- the WITHOUT ROWID table and 1.3–1.9 s in the rowid one; the engine's first sync of 100,000
-- offers went from 4.6–5.0 s to 2.4–3.0 s (docs/PERFORMANCE.md, "Two write-stage levers");
-- 50,000 upserts of 3 KB order rows, 4.5–5.0 s → 1.1–1.3 s.
-- PostgreSQL's heap tables are rowid tables already: nothing to change there.
CREATE TABLE offers_by_rowid (
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
    missed_scans      INTEGER NOT NULL DEFAULT 0,
    missed_by_run     INTEGER,
    UNIQUE (account, id)
);
INSERT INTO offers_by_rowid (account, id, part_number, part_number_key, name, brand, status,
    sale_price, recommended_price, currency, vat_id, general_stock, estimated_stock, ean, data,
    content_hash, removed, first_seen_at, updated_at, removed_at, missed_scans, missed_by_run)
SELECT account, id, part_number, part_number_key, name, brand, status,
    sale_price, recommended_price, currency, vat_id, general_stock, estimated_stock, ean, data,
    content_hash, removed, first_seen_at, updated_at, removed_at, missed_scans, missed_by_run
FROM offers ORDER BY account, id;
DROP TABLE offers;
ALTER TABLE offers_by_rowid RENAME TO offers;
CREATE INDEX offers_missed ON offers (account, missed_scans) WHERE missed_scans > 0;

-- Orders. Their lines keep their shape (small rows, which WITHOUT ROWID suits) but are moved
-- to point at the new table before the old one goes: with foreign keys on, as they are during
-- migrations, dropping a parent deletes its children (ON DELETE CASCADE). Renaming the new
-- table to `orders` carries the lines' reference along.
CREATE TABLE orders_by_rowid (
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
    UNIQUE (account, id)
);
INSERT INTO orders_by_rowid (account, id, order_type, status, date, modified, payment_mode_id,
    customer_id, customer_name, data, content_hash, first_seen_at, updated_at)
SELECT account, id, order_type, status, date, modified, payment_mode_id,
    customer_id, customer_name, data, content_hash, first_seen_at, updated_at
FROM orders ORDER BY account, id;
CREATE TABLE order_lines_moved (
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
    FOREIGN KEY (account, order_id) REFERENCES orders_by_rowid(account, id) ON DELETE CASCADE
) WITHOUT ROWID;
INSERT INTO order_lines_moved (account, order_id, line_id, product_id, part_number, name,
    quantity, sale_price, currency, vat, status)
SELECT account, order_id, line_id, product_id, part_number, name,
    quantity, sale_price, currency, vat, status
FROM order_lines;
DROP TABLE order_lines;
DROP TABLE orders;
ALTER TABLE orders_by_rowid RENAME TO orders;
ALTER TABLE order_lines_moved RENAME TO order_lines;
CREATE INDEX orders_modified ON orders (account, order_type, modified);

-- Returns.
CREATE TABLE returns_by_rowid (
    account      TEXT NOT NULL REFERENCES accounts(name),
    emag_id      INTEGER NOT NULL,
    order_id     INTEGER,
    status       INTEGER,
    date         TEXT,
    data         TEXT NOT NULL,
    content_hash INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    rma_type     INTEGER,
    UNIQUE (account, emag_id)
);
INSERT INTO returns_by_rowid (account, emag_id, order_id, status, date, data, content_hash,
    updated_at, rma_type)
SELECT account, emag_id, order_id, status, date, data, content_hash, updated_at, rma_type
FROM returns ORDER BY account, emag_id;
DROP TABLE returns;
ALTER TABLE returns_by_rowid RENAME TO returns;

-- Reference data.
CREATE TABLE reference_data_by_rowid (
    marketplace  TEXT NOT NULL,
    kind         TEXT NOT NULL,
    id           INTEGER NOT NULL,
    name         TEXT,
    data         TEXT NOT NULL,
    content_hash INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    UNIQUE (marketplace, kind, id)
);
INSERT INTO reference_data_by_rowid (marketplace, kind, id, name, data, content_hash, updated_at)
SELECT marketplace, kind, id, name, data, content_hash, updated_at
FROM reference_data ORDER BY marketplace, kind, id;
DROP TABLE reference_data;
ALTER TABLE reference_data_by_rowid RENAME TO reference_data;
