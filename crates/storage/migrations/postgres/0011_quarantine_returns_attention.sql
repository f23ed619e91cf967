-- Items eMAG sent that cannot be decoded (issue 9, point 6): an id out of range, an order
-- line without id or with a repeated id, a price that overflows. Each is kept raw here with
-- the reason and skipped, so one odd item never blocks an account. `data` is the item as eMAG
-- sent it (customer data included), so it lives here and nowhere else: never in logs, errors
-- or runs. One row per distinct item text: an item seen again on every run bumps `times_seen`.
-- Keep in step with ../sqlite.
CREATE TABLE quarantine (
    account       TEXT NOT NULL REFERENCES accounts(name),
    kind          TEXT NOT NULL,
    content_hash  BIGINT NOT NULL,
    item_id       TEXT,
    reason        TEXT NOT NULL,
    data          TEXT NOT NULL,
    run_id        BIGINT,
    first_seen_at BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL,
    times_seen    BIGINT NOT NULL DEFAULT 1,
    PRIMARY KEY (account, kind, content_hash)
);
-- Why an account needs attention (`AttentionCause`): a refused large removal is cleared by
-- the next offer run that removes without refusing, not by any run that reads the account.
-- NULL (rows before this migration) means `access`.
ALTER TABLE accounts ADD COLUMN attention_cause TEXT;
-- A return's type (3 seller-fulfilled, 2 FBE; issue 9, point 4): returns not yet closed are
-- read again by id, and rma/read needs the type to find an FBE one.
ALTER TABLE returns ADD COLUMN rma_type BIGINT;
