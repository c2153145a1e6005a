-- Signed checkpoints of the audit chain (src/audit/checkpoint.rs): the head at a sequence number, signed with
-- the broker's Ed25519 key, so an exported chain can be verified offline with the public key alone.

CREATE TABLE audit_checkpoints (
    seq BIGINT PRIMARY KEY,
    head_hash TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    key_id TEXT NOT NULL,
    signature TEXT NOT NULL
);
