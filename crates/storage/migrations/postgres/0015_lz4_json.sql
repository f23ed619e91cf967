-- The raw JSON beside the columns is compressed with lz4 instead of pglz, PostgreSQL's
-- default. TOAST compresses a value longer than about 2 KB as it is written: most orders
-- (2.1 KB on average, with their customer and lines), few offers (1.4 KB), some returns and
-- reference items. pglz took 7 % of the server's time in a first sync of orders; lz4 is
-- several times faster to compress and to read back (docs/PERFORMANCE.md). Values already
-- stored keep pglz until they are written again; both are read alike.
-- lz4 needs PostgreSQL 14 built with it (Debian's, Ubuntu's and the official images are):
-- on another server the columns keep pglz and the migration still succeeds.
DO $$
DECLARE
    t TEXT;
BEGIN
    FOREACH t IN ARRAY ARRAY['offers', 'orders', 'returns', 'reference_data', 'quarantine'] LOOP
        EXECUTE format('ALTER TABLE %I ALTER COLUMN data SET COMPRESSION lz4', t);
    END LOOP;
EXCEPTION
    -- A server built without lz4 (feature_not_supported), or older than 14 (syntax_error).
    WHEN feature_not_supported OR syntax_error THEN
        RAISE NOTICE 'lz4 is not available on this server: the raw JSON stays compressed with pglz';
END
$$;
