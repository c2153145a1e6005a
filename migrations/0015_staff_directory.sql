-- The staff directory: each staff member's display name and roles as their identity provider last gave them at
-- sign-in, so the console, the access history and reports name people beside their ids after their sessions
-- are gone. Staff names are not PHI; they never go to logs (only pseudonyms do).
CREATE TABLE staff_directory (
    subject TEXT PRIMARY KEY,
    display_name TEXT,
    roles TEXT NOT NULL,
    first_seen_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL
);
