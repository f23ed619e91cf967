-- Counters of ended runs per (account, kind, trigger, outcome), added to in the transaction
-- that ends a run (`finish_run`): /metrics reads this small table in one query instead of
-- the whole run history, and the counts outlive the pruning of old runs (Prometheus counters
-- must not go down). Durations and record counts are sums; `reclaimed` counts runs that were
-- taken over from a holder whose lease expired. Keep in step with ../sqlite.
CREATE TABLE run_totals (
    account          TEXT NOT NULL,
    kind             TEXT NOT NULL,
    trigger          TEXT NOT NULL,
    outcome          TEXT NOT NULL,
    runs             BIGINT NOT NULL DEFAULT 0,
    duration_ms      BIGINT NOT NULL DEFAULT 0,
    items_read       BIGINT NOT NULL DEFAULT 0,
    created          BIGINT NOT NULL DEFAULT 0,
    updated          BIGINT NOT NULL DEFAULT 0,
    unchanged        BIGINT NOT NULL DEFAULT 0,
    removed          BIGINT NOT NULL DEFAULT 0,
    requests         BIGINT NOT NULL DEFAULT 0,
    rate_limit_waits BIGINT NOT NULL DEFAULT 0,
    reclaimed        BIGINT NOT NULL DEFAULT 0,
    last_started_at  BIGINT,
    last_finished_at BIGINT,
    PRIMARY KEY (account, kind, trigger, outcome)
);

-- The runs that ended before this migration count too.
INSERT INTO run_totals (account, kind, trigger, outcome, runs, duration_ms, items_read, created,
    updated, unchanged, removed, requests, rate_limit_waits, reclaimed, last_started_at,
    last_finished_at)
SELECT account, kind, trigger, state, COUNT(*),
    COALESCE(SUM(finished_at - started_at), 0)::BIGINT,
    SUM(items_read)::BIGINT, SUM(created)::BIGINT, SUM(updated)::BIGINT,
    SUM(unchanged)::BIGINT, SUM(removed)::BIGINT, SUM(requests)::BIGINT,
    SUM(rate_limit_waits)::BIGINT, SUM(CASE WHEN reclaimed_from IS NULL THEN 0 ELSE 1 END)::BIGINT,
    MAX(started_at), MAX(finished_at)
FROM runs WHERE state IN ('succeeded', 'failed')
GROUP BY account, kind, trigger, state;
