-- Where each segment's video keyframes are (track:ms:cluster offset, comma-separated): the Cues a reviewer's
-- player seeks with are built from them. Rows written before have none (their recordings seek as before).
ALTER TABLE recording_segments ADD COLUMN cues TEXT NOT NULL DEFAULT '';
