-- A recording is a sequence of sealed segments, each uploaded to the object store as it closes (every
-- `recording.segment_seconds` and whenever the visit moves to another node), so a lost node loses at most its
-- open segment. Rows of `recordings` are the parts one node wrote; a visit's parts form one recording whose
-- media share one timeline, starting at its first part's `started_at` (`origin_ms`).
CREATE TABLE recording_segments (
    recording_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    object_key TEXT NOT NULL,
    -- The WebM clusters it holds, in bytes (the sealed object is a little larger).
    plain_bytes BIGINT NOT NULL,
    sealed_bytes BIGINT NOT NULL,
    start_ms BIGINT NOT NULL,
    end_ms BIGINT NOT NULL,
    -- The video sizes seen so far, patient and nurse: `WxH` or empty, comma-separated.
    video_dims TEXT NOT NULL,
    stored BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (recording_id, seq)
);
CREATE INDEX recording_segments_stored ON recording_segments (stored);
ALTER TABLE recordings ADD COLUMN origin_ms BIGINT;
