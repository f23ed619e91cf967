-- The status model reads the latest succeeded run of every (account, kind) (data freshness)
-- and the failures of the last hours (recent errors) on every call of `status`, `monitor` and
-- the dashboard: both stay index reads however long the run history grows.
CREATE INDEX runs_succeeded ON runs (account, kind, id) WHERE state = 'succeeded';
CREATE INDEX runs_failed ON runs (finished_at) WHERE state = 'failed';
