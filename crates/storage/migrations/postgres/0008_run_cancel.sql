-- An operator's request to stop a running run (dashboard `POST /api/runs/{id}/cancel`): the
-- process holding the run sees it on its next heartbeat and stops at the next page boundary;
-- the run then ends `cancelled` (terminal: never resumed). Queued or interrupted runs are
-- cancelled at once and never carry it. Keep in step with ../sqlite.
ALTER TABLE runs ADD COLUMN cancel_requested_at BIGINT;
ALTER TABLE runs ADD COLUMN cancel_requested_by TEXT;
