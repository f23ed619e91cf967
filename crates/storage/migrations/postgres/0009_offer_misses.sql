-- Offers that complete scans did not list (issue 9, point 7). `missed_scans` counts the
-- consecutive complete scans that missed a live offer; any scan that lists it again resets it.
-- `missed_by_run` is the run that counted the last miss, so a resumed run never counts one
-- scan twice. With too many missing offers to confirm each by id, an offer is marked removed
-- only when two complete scans in a row missed it. Keep in step with ../sqlite.
ALTER TABLE offers ADD COLUMN missed_scans BIGINT NOT NULL DEFAULT 0;
ALTER TABLE offers ADD COLUMN missed_by_run BIGINT;
-- Few offers are ever missed: the removal pass finds them without walking the account.
CREATE INDEX offers_missed ON offers (account, missed_scans) WHERE missed_scans > 0;
