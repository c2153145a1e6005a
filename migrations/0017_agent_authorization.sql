-- Seed 003's agent-authorization flag: whether every nurse who accepted a chat held its queue's skills and the
-- policy's grant to work queues at that moment (NULL until a nurse accepts), and the same for the visit the
-- nurse elevated it to (her chat acceptance and the visit's grant). Chat-only interactions are classified in the
-- audit chain when they close (`conversation.classified`).
ALTER TABLE conversations ADD COLUMN agent_authorized BIGINT;
ALTER TABLE visit_classifications ADD COLUMN agent_authorized BIGINT;
