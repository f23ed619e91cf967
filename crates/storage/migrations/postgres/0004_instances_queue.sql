-- Scheduler instances announce themselves and beat while they run, so that `status` (from
-- any machine) lists the live ones, and an operator sees which process holds which run.
CREATE TABLE instances (
    id           TEXT PRIMARY KEY,
    host         TEXT NOT NULL,
    pid          BIGINT NOT NULL,
    version      TEXT NOT NULL,
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    schedules    BIGINT NOT NULL DEFAULT 0,
    running      BIGINT NOT NULL DEFAULT 0,
    stopped_at   BIGINT
);
-- A run taken over from a holder that died or went silent (an expired lease), and from whom.
ALTER TABLE runs ADD COLUMN reclaimed_from TEXT;
ALTER TABLE runs ADD COLUMN reclaimed_at BIGINT;
-- Manual runs queued by any process (CLI, dashboard) are found by the scheduler every tick.
CREATE INDEX runs_queued ON runs (account, kind) WHERE state = 'queued';
-- An account whose credentials or IP were refused needs a person: the reason, and since when.
-- Set by the failing run, cleared by the next run that reads the account's data again.
ALTER TABLE accounts ADD COLUMN attention TEXT;
ALTER TABLE accounts ADD COLUMN attention_at BIGINT;
