-- What `examroom cluster status` and placement read about each node besides its sockets: its live video visits,
-- and whether it is draining (1: it takes no new visits and is about to leave). Defaults keep older nodes' rows valid.
ALTER TABLE cluster_nodes ADD COLUMN live_visits BIGINT NOT NULL DEFAULT 0;
ALTER TABLE cluster_nodes ADD COLUMN draining BIGINT NOT NULL DEFAULT 0;
