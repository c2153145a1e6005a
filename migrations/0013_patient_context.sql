-- What the nurse sees of a patient before accepting the chat: the verified name and birth date from the
-- portal's ID token and the reason the patient gave, as one JSON document sealed (AES-256-GCM) with the
-- conversation's data key, like its messages.
CREATE TABLE conversation_context (
    conversation_id TEXT PRIMARY KEY,
    sealed TEXT NOT NULL
);
-- The birth date the portal's ID token carried (`birthdate`), kept with the session like its `name`.
ALTER TABLE sessions ADD COLUMN birthdate TEXT;
