-- Alerts, second part (issue 10): escalation and the daily digest. Keep in step with ../postgres.
-- When an incident still firing passed both escalation thresholds (time and failed runs) it is
-- raised to critical once: escalated_at guards that, whoever evaluates.
ALTER TABLE incidents ADD COLUMN escalated_at BIGINT;
-- A notice of low severity kept for the daily digest: due at the digest's hour, sent with the
-- others of its channel in one message.
ALTER TABLE alert_outbox ADD COLUMN digest INTEGER NOT NULL DEFAULT 0;
