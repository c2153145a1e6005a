-- Which node hosts each live video visit (its SFU room and recording), so that a participant whose socket is on
-- another node has their signaling relayed there, and so that another node can take the visit over when its host
-- drains or dies (docs/cluster.md, "Video across nodes"). Written by the host when the visit is proposed and as
-- it changes (answered, recording started or paused), removed when it ends.
CREATE TABLE visit_hosts (
    visit_id TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL UNIQUE,
    queue TEXT NOT NULL,
    patient TEXT NOT NULL,
    nurse TEXT NOT NULL,
    host_node TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    -- `proposed` or `active`.
    state TEXT NOT NULL,
    -- What the participants were told about the recording (`none`, `consent_required`, `recording`, `paused`,
    -- `declined`), and the recording the host was writing: a new host continues it.
    recording TEXT NOT NULL,
    recording_id TEXT,
    -- How many times the visit moved to another node (clients connected at a lower epoch rejoin).
    epoch BIGINT NOT NULL
);
CREATE INDEX visit_hosts_patient ON visit_hosts (patient);
CREATE INDEX visit_hosts_nurse ON visit_hosts (nurse);
