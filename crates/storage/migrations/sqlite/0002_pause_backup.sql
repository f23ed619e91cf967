-- Pause/resume per account, kept in the store so every instance and every command sees it.
ALTER TABLE accounts ADD COLUMN paused INTEGER NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN paused_at INTEGER;
CREATE INDEX runs_finished ON runs (finished_at);
