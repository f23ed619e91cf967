-- The status model (every /api/status, /health, `status`, `monitor`) and the scheduler's full
-- refresh read the latest run and the latest succeeded run of every (account, kind). Found by
-- `MAX(id) … GROUP BY account, kind` that is a walk over the whole run history (~0.2 s at a
-- million runs); `latest_runs` holds the two ids, one row per (account, kind), so those reads
-- cost O(schedules). Triggers on `runs` keep it right whatever code writes runs: an insert
-- moves `latest_id` (and `latest_success_id` for a run inserted succeeded), a run that becomes
-- succeeded moves `latest_success_id`, and a deleted run that was one of the two (pruning) is
-- replaced by the latest remaining one, so every answer equals the old `MAX(id)` queries'.
-- Relies on run ids only growing (AUTOINCREMENT) and on a run's account and kind never
-- changing. Keep in step with ../postgres.
CREATE TABLE latest_runs (
    account           TEXT NOT NULL,
    kind              TEXT NOT NULL,
    latest_id         INTEGER NOT NULL,
    latest_success_id INTEGER,
    PRIMARY KEY (account, kind)
) WITHOUT ROWID;

INSERT INTO latest_runs (account, kind, latest_id, latest_success_id)
SELECT account, kind, MAX(id), MAX(CASE WHEN state = 'succeeded' THEN id END)
FROM runs GROUP BY account, kind;

CREATE TRIGGER latest_runs_on_insert AFTER INSERT ON runs BEGIN
    INSERT INTO latest_runs (account, kind, latest_id, latest_success_id)
    VALUES (new.account, new.kind, new.id,
            CASE WHEN new.state = 'succeeded' THEN new.id END)
    ON CONFLICT (account, kind) DO UPDATE SET
        latest_id = MAX(latest_id, excluded.latest_id),
        latest_success_id = COALESCE(MAX(latest_success_id, excluded.latest_success_id),
                                     latest_success_id, excluded.latest_success_id);
END;

CREATE TRIGGER latest_runs_on_success AFTER UPDATE OF state ON runs
WHEN new.state = 'succeeded' AND old.state IS NOT 'succeeded' BEGIN
    UPDATE latest_runs
    SET latest_success_id = MAX(COALESCE(latest_success_id, 0), new.id)
    WHERE account = new.account AND kind = new.kind;
END;

-- Never done by emag-sync, but a succeeded run made something else must not stay the latest
-- success.
CREATE TRIGGER latest_runs_on_unsuccess AFTER UPDATE OF state ON runs
WHEN old.state = 'succeeded' AND new.state IS NOT 'succeeded' BEGIN
    UPDATE latest_runs
    SET latest_success_id = (SELECT MAX(id) FROM runs
                             WHERE account = old.account AND kind = old.kind
                               AND state = 'succeeded')
    WHERE account = old.account AND kind = old.kind AND latest_success_id = old.id;
END;

-- Index lookups (runs_recent, runs_succeeded), and only when the deleted run was one of the
-- two: pruning a million old runs stays a million primary-key probes of this small table.
CREATE TRIGGER latest_runs_on_delete AFTER DELETE ON runs BEGIN
    DELETE FROM latest_runs
    WHERE account = old.account AND kind = old.kind AND latest_id = old.id
      AND NOT EXISTS (SELECT 1 FROM runs WHERE account = old.account AND kind = old.kind);
    UPDATE latest_runs
    SET latest_id = (SELECT MAX(id) FROM runs WHERE account = old.account AND kind = old.kind)
    WHERE account = old.account AND kind = old.kind AND latest_id = old.id;
    UPDATE latest_runs
    SET latest_success_id = (SELECT MAX(id) FROM runs
                             WHERE account = old.account AND kind = old.kind
                               AND state = 'succeeded')
    WHERE account = old.account AND kind = old.kind AND latest_success_id = old.id;
END;

-- Failures in a row: the failed runs after the latest success, a range count of this index.
CREATE INDEX runs_failed_by_kind ON runs (account, kind, id) WHERE state = 'failed';
-- Runs taken over in the last day (`leases_reclaimed_24h`): few of them, all in this index.
CREATE INDEX runs_reclaimed ON runs (reclaimed_at) WHERE reclaimed_at IS NOT NULL;
-- The last hour's warnings (succeeded after retries or a takeover), counted from this index
-- instead of visiting every run of the hour.
CREATE INDEX runs_warned ON runs (finished_at)
WHERE state = 'succeeded' AND (retries > 0 OR reclaimed_from IS NOT NULL);
