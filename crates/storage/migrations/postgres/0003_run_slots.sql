-- Run creation is idempotent per (schedule, slot): several scheduler instances that find the
-- same slot due create one run between them, even when the first finishes before the others
-- look.
ALTER TABLE runs ADD COLUMN slot BIGINT;
CREATE UNIQUE INDEX runs_one_per_slot ON runs (account, kind, slot) WHERE slot IS NOT NULL;
-- One running run per account across every process: runs of one account share its rate
-- budget, which no single process could pace if two of them ran at once.
CREATE UNIQUE INDEX runs_one_running_per_account ON runs (account) WHERE state = 'running';
