-- The status model (every /api/status, /health, `status`, `monitor`) and the scheduler's full
-- refresh read the latest run and the latest succeeded run of every (account, kind). Found by
-- `MAX(id) … GROUP BY account, kind` that is a walk over the whole run history (~0.2 s at a
-- million runs); `latest_runs` holds the two ids, one row per (account, kind), so those reads
-- cost O(schedules). Triggers on `runs` keep it right whatever code writes runs: an insert
-- moves `latest_id` (and `latest_success_id` for a run inserted succeeded), a run that becomes
-- succeeded moves `latest_success_id`, and a deleted run that was one of the two (pruning) is
-- replaced by the latest remaining one, so every answer equals the old `MAX(id)` queries'.
-- Relies on run ids only growing (identity) and on a run's account and kind never changing.
-- Concurrent writers of one (account, kind) queue on its row (ON CONFLICT DO UPDATE, and
-- READ COMMITTED re-checks `latest_id = OLD.id` after the wait). Keep in step with ../sqlite.
CREATE TABLE latest_runs (
    account           TEXT NOT NULL,
    kind              TEXT NOT NULL,
    latest_id         BIGINT NOT NULL,
    latest_success_id BIGINT,
    PRIMARY KEY (account, kind)
);

INSERT INTO latest_runs (account, kind, latest_id, latest_success_id)
SELECT account, kind, MAX(id), MAX(CASE WHEN state = 'succeeded' THEN id END)
FROM runs GROUP BY account, kind;

CREATE FUNCTION latest_runs_track() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO latest_runs AS l (account, kind, latest_id, latest_success_id)
        VALUES (NEW.account, NEW.kind, NEW.id,
                CASE WHEN NEW.state = 'succeeded' THEN NEW.id END)
        ON CONFLICT (account, kind) DO UPDATE SET
            latest_id = GREATEST(l.latest_id, EXCLUDED.latest_id),
            latest_success_id = GREATEST(l.latest_success_id, EXCLUDED.latest_success_id);
    ELSIF TG_OP = 'UPDATE' THEN
        IF NEW.state = 'succeeded' THEN
            UPDATE latest_runs
            SET latest_success_id = GREATEST(latest_success_id, NEW.id)
            WHERE account = NEW.account AND kind = NEW.kind;
        ELSE
            -- Never done by emag-sync, but a succeeded run made something else must not stay
            -- the latest success.
            UPDATE latest_runs
            SET latest_success_id = (SELECT MAX(id) FROM runs
                                     WHERE account = OLD.account AND kind = OLD.kind
                                       AND state = 'succeeded')
            WHERE account = OLD.account AND kind = OLD.kind AND latest_success_id = OLD.id;
        END IF;
    ELSE
        -- Only when the deleted run was one of the two: pruning stays a primary-key probe of
        -- this small table per run, plus an index lookup (runs_recent, runs_succeeded) per
        -- (account, kind) whose latest runs go.
        DELETE FROM latest_runs
        WHERE account = OLD.account AND kind = OLD.kind AND latest_id = OLD.id
          AND NOT EXISTS (SELECT 1 FROM runs WHERE account = OLD.account AND kind = OLD.kind);
        UPDATE latest_runs
        SET latest_id = (SELECT MAX(id) FROM runs
                         WHERE account = OLD.account AND kind = OLD.kind)
        WHERE account = OLD.account AND kind = OLD.kind AND latest_id = OLD.id;
        UPDATE latest_runs
        SET latest_success_id = (SELECT MAX(id) FROM runs
                                 WHERE account = OLD.account AND kind = OLD.kind
                                   AND state = 'succeeded')
        WHERE account = OLD.account AND kind = OLD.kind AND latest_success_id = OLD.id;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER latest_runs_on_insert AFTER INSERT ON runs
FOR EACH ROW EXECUTE FUNCTION latest_runs_track();
CREATE TRIGGER latest_runs_on_state AFTER UPDATE OF state ON runs
FOR EACH ROW WHEN (NEW.state IS DISTINCT FROM OLD.state
                   AND (NEW.state = 'succeeded' OR OLD.state = 'succeeded'))
EXECUTE FUNCTION latest_runs_track();
CREATE TRIGGER latest_runs_on_delete AFTER DELETE ON runs
FOR EACH ROW EXECUTE FUNCTION latest_runs_track();

-- Failures in a row: the failed runs after the latest success, a range count of this index.
CREATE INDEX runs_failed_by_kind ON runs (account, kind, id) WHERE state = 'failed';
-- Runs taken over in the last day (`leases_reclaimed_24h`): few of them, all in this index.
CREATE INDEX runs_reclaimed ON runs (reclaimed_at) WHERE reclaimed_at IS NOT NULL;
-- The last hour's warnings (succeeded after retries or a takeover), counted from this index
-- instead of visiting every run of the hour.
CREATE INDEX runs_warned ON runs (finished_at)
WHERE state = 'succeeded' AND (retries > 0 OR reclaimed_from IS NOT NULL);
