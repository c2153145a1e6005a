-- Recordings of video visits. The media is sealed (see src/recording/sealed.rs) under a per-recording data key
-- stored only wrapped here; deleting the row's key material makes the object unreadable. The spool key seals
-- the in-progress spool so a recording cut by a crash can be recovered.

CREATE TABLE recordings (
    id TEXT PRIMARY KEY,
    visit_id TEXT NOT NULL,
    queue TEXT NOT NULL,
    policies TEXT NOT NULL,
    consent TEXT NOT NULL,
    state TEXT NOT NULL,
    kek_id TEXT NOT NULL,
    wrapped_key TEXT NOT NULL,
    spool_kek_id TEXT NOT NULL,
    spool_wrapped_key TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    ended_at BIGINT,
    retain_until BIGINT NOT NULL,
    legal_hold BIGINT NOT NULL DEFAULT 0,
    object_key TEXT,
    object_bytes BIGINT,
    media_bytes BIGINT,
    manifest TEXT
);
CREATE INDEX recordings_state ON recordings (state);
