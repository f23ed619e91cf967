-- SQLite's offers, orders, returns and reference data move to rowid tables in this version
-- (see ../sqlite). PostgreSQL's heap tables keep rows apart from their primary-key index
-- already: nothing to change. Kept so both backends carry the same schema versions.
SELECT 1;
