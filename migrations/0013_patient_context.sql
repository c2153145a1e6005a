-- What the nurse sees of a patient before accepting the chat: the verified name and birth date from the
-- portal's ID token and the reason the patient gave, as one JSON document sealed (AES-256-GCM) with the
-- conversation's data key, like its messages.
CREATE TABLE conversation_context (
    conversation_id TEXT PRIMARY KEY,
    sealed TEXT NOT NULL
);
-- The birth date the portal's ID token carried (`birthdate`), kept with the session like its `name`.
ALTER TABLE sessions ADD COLUMN birthdate TEXT;
-- The nurse's wrap-up of a chat: a disposition from `routing.dispositions` and optional notes, as one JSON
-- document sealed with the conversation's data key. One per conversation; a later save replaces it.
CREATE TABLE conversation_wrapups (
    conversation_id TEXT PRIMARY KEY,
    nurse TEXT NOT NULL,
    sealed TEXT NOT NULL,
    at_ms BIGINT NOT NULL
);
