-- Conversations and their messages. Message bodies are sealed (AES-256-GCM) with the conversation's data key,
-- which is stored only wrapped by a key-encryption key (kek_id names it).

ALTER TABLE sessions ADD COLUMN skills TEXT NOT NULL DEFAULT '';

CREATE TABLE conversations (
    id TEXT PRIMARY KEY,
    reference TEXT NOT NULL UNIQUE,
    queue TEXT NOT NULL,
    patient TEXT NOT NULL,
    start_key TEXT NOT NULL,
    nurse TEXT,
    state TEXT NOT NULL,
    priority_boost BIGINT NOT NULL DEFAULT 0,
    kek_id TEXT NOT NULL,
    wrapped_key TEXT NOT NULL,
    last_seq BIGINT NOT NULL DEFAULT 0,
    enqueued_at BIGINT NOT NULL,
    assigned_at BIGINT,
    closed_at BIGINT,
    last_activity_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX conversations_start_key ON conversations (patient, start_key);
CREATE INDEX conversations_state ON conversations (state);

CREATE TABLE messages (
    conversation_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    sender TEXT NOT NULL,
    sender_role TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    body TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    PRIMARY KEY (conversation_id, seq)
);
CREATE UNIQUE INDEX messages_idempotency ON messages (conversation_id, sender, idempotency_key);
