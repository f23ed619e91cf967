-- PostgreSQL compresses the raw JSON with lz4 from this version (see ../postgres). SQLite
-- stores it as written: nothing to change. Kept so both backends carry the same schema
-- versions.
SELECT 1;
