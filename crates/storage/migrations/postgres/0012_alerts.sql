-- Alerts (issue 10): incidents and the outbox of their notices. At most one open incident per
-- key (rule, account, kind): the partial unique index makes opening one idempotent across
-- restarts and across instances sharing the database, and the outbox rows of its notices are
-- written in the same transaction that opens or resolves it, so each notice is sent once per
-- channel whoever evaluates. The outbox holds no message text and no secret: the message is
-- rendered from the incident when it is sent. Keep in step with ../sqlite.
CREATE TABLE incidents (
    id              BIGSERIAL PRIMARY KEY,
    key             TEXT    NOT NULL,
    rule            TEXT    NOT NULL,
    account         TEXT,
    kind            TEXT,
    severity        TEXT    NOT NULL,
    state           TEXT    NOT NULL,
    message         TEXT    NOT NULL,
    action          TEXT    NOT NULL,
    opened_at       BIGINT NOT NULL,
    last_seen_at    BIGINT NOT NULL,
    acknowledged_at BIGINT,
    resolved_at     BIGINT,
    resolved_by     TEXT
);
CREATE UNIQUE INDEX incidents_open_key ON incidents (key) WHERE state <> 'resolved';
CREATE INDEX incidents_recent ON incidents (opened_at);

CREATE TABLE alert_outbox (
    id              BIGSERIAL PRIMARY KEY,
    incident_id     BIGINT  NOT NULL REFERENCES incidents (id),
    channel         TEXT    NOT NULL,
    notice          TEXT    NOT NULL,
    created_at      BIGINT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    claimed_until   BIGINT,
    delivered_at    BIGINT,
    last_error      TEXT
);
CREATE INDEX alert_outbox_due ON alert_outbox (next_attempt_at) WHERE delivered_at IS NULL;
