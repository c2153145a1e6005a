-- Several brokers on one PostgreSQL database (docs/cluster.md). On SQLite (one node) these tables stay empty.
-- Times here are the database's clock (milliseconds), so nodes' clocks need not agree.
-- Membership: each node's row, refreshed by its heartbeat; a node whose heartbeat is older than
-- `cluster.dead_after_seconds` is dead and its leases and nurses are taken over.
CREATE TABLE cluster_nodes (
    node_id TEXT PRIMARY KEY,
    internal_url TEXT NOT NULL,
    media_addresses TEXT NOT NULL,
    sockets BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL
);
-- Leases: one holder per name (the routing leader, each cluster-wide job) until `expires_at`.
CREATE TABLE cluster_leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
-- The waiting room's state beside the conversations' rows, written by the routing leader so that a new leader
-- rebuilds it: who is ready (on which node), and the open offers (ended when a new leader takes over).
CREATE TABLE routing_presence (
    nurse TEXT PRIMARY KEY,
    skills TEXT NOT NULL,
    node_id TEXT NOT NULL,
    since BIGINT NOT NULL
);
CREATE TABLE routing_offers (
    conversation_id TEXT PRIMARY KEY,
    nurse TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
