-- Reports the broker produced on a schedule: each stored once in the object store (under object_key, with its
-- SHA-256), one per schedule and period.
CREATE TABLE scheduled_reports (
    id TEXT PRIMARY KEY,
    schedule TEXT NOT NULL,
    report TEXT NOT NULL,
    period_from BIGINT NOT NULL,
    period_to BIGINT NOT NULL,
    executed_at BIGINT NOT NULL,
    head_seq BIGINT NOT NULL,
    object_key TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    key_id TEXT NOT NULL,
    UNIQUE (schedule, period_from)
);
CREATE INDEX scheduled_reports_executed ON scheduled_reports (executed_at);
