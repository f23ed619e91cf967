-- Offers in a rowid table (issue 11, point 5). A WITHOUT ROWID table keeps whole rows in its
-- primary-key B-tree, which suits rows much smaller than a page; an offer row is about 1.4 KB
-- (the JSON eMAG sent is kept beside the columns), so a 4 KiB leaf held two of them and
-- inserting pages of offers split and rebalanced leaves all the time. In a rowid table the rows
-- go to the table's B-tree in insertion order and the key (account, id) to a small index:
-- 100,000 offer upserts (100 per statement, 8 statements per transaction) took 3.8–4.6 s in
-- the WITHOUT ROWID table and 1.3–1.9 s in the rowid one; the engine's first sync of 100,000
-- offers went from 4.6–5.0 s to 2.4–3.0 s (docs/PERFORMANCE.md, "Two write-stage levers").
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
