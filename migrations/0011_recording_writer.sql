-- The node writing a recording's spool (`cluster.node_id`). A node that starts recovers only the unfinished
-- recordings it wrote before, or whose writer is no longer alive: never another live node's recording in progress.
ALTER TABLE recordings ADD COLUMN writer TEXT;
