-- Per-visit classification flags (never identifiers): kept current while the visit runs, final when it ends.
-- The final flags also enter the audit chain as `visit.classified`, which the compliance reports read.
CREATE TABLE visit_classifications (
    visit_id TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL,
    queue TEXT NOT NULL,
    interaction_type TEXT NOT NULL,
    consent TEXT NOT NULL,
    consent_captured BIGINT NOT NULL,
    recording_status TEXT NOT NULL,
    data_classification TEXT NOT NULL,
    recording_id TEXT,
    created_at BIGINT NOT NULL,
    ended_at BIGINT
);
CREATE INDEX visit_classifications_created ON visit_classifications (created_at);
