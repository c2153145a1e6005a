-- Which node hosts each live video visit (its SFU room and recording), so that a participant whose socket is on
-- another node has their signaling relayed there (docs/cluster.md, "Video across nodes"). Written by the host when
-- the visit is proposed, removed when it ends; a row whose host died is replaced by the next request.
CREATE TABLE visit_hosts (
    visit_id TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL UNIQUE,
    patient TEXT NOT NULL,
    nurse TEXT NOT NULL,
    host_node TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX visit_hosts_patient ON visit_hosts (patient);
CREATE INDEX visit_hosts_nurse ON visit_hosts (nurse);
