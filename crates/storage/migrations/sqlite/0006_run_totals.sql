-- Counters of ended runs per (account, kind, trigger, outcome), added to in the transaction
-- that ends a run (`finish_run`): /metrics reads this small table in one query instead of
-- the whole run history, and the counts outlive the pruning of old runs (Prometheus counters
-- must not go down). Durations and record counts are sums; `reclaimed` counts runs that were
-- taken over from a holder whose lease expired. Keep in step with ../postgres.
CREATE TABLE run_totals (
    account          TEXT NOT NULL,
    kind             TEXT NOT NULL,
    trigger          TEXT NOT NULL,
    outcome          TEXT NOT NULL,
    runs             INTEGER NOT NULL DEFAULT 0,
    duration_ms      INTEGER NOT NULL DEFAULT 0,
    items_read       INTEGER NOT NULL DEFAULT 0,
    created          INTEGER NOT NULL DEFAULT 0,
    updated          INTEGER NOT NULL DEFAULT 0,
    unchanged        INTEGER NOT NULL DEFAULT 0,
    removed          INTEGER NOT NULL DEFAULT 0,
    requests         INTEGER NOT NULL DEFAULT 0,
    rate_limit_waits INTEGER NOT NULL DEFAULT 0,
    reclaimed        INTEGER NOT NULL DEFAULT 0,
    last_started_at  INTEGER,
    last_finished_at INTEGER,
    PRIMARY KEY (account, kind, trigger, outcome)
) WITHOUT ROWID;

-- The runs that ended before this migration count too.
INSERT INTO run_totals (account, kind, trigger, outcome, runs, duration_ms, items_read, created,
    updated, unchanged, removed, requests, rate_limit_waits, reclaimed, last_started_at,
    last_finished_at)
SELECT account, kind, trigger, state, COUNT(*), COALESCE(SUM(finished_at - started_at), 0),
    SUM(items_read), SUM(created), SUM(updated), SUM(unchanged), SUM(removed), SUM(requests),
    SUM(rate_limit_waits), SUM(CASE WHEN reclaimed_from IS NULL THEN 0 ELSE 1 END),
    MAX(started_at), MAX(finished_at)
FROM runs WHERE state IN ('succeeded', 'failed')
GROUP BY account, kind, trigger, state;
