-- Break-glass grants: a staff member who declared an emergency reason may open one recording or conversation
-- outside their role until `expires_at`. The reason itself is in the audit chain (`access.break_glass`).
CREATE TABLE break_glass_grants (
    id TEXT PRIMARY KEY,
    subject TEXT NOT NULL,
    resource TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX break_glass_by_resource ON break_glass_grants (resource, expires_at);
-- Every node reads the newest revocations every second (open sockets of revoked sessions close at once).
CREATE INDEX sessions_revoked ON sessions (revoked_at);
