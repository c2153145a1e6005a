-- Indexes for the evidence jobs: the alert check reads the audit chain's last day by time; the retention sweep
-- finds a chat's visits and a visit's recordings (to keep what a legal hold or a kept recording covers).
CREATE INDEX audit_events_at ON audit_events (at_ms);
CREATE INDEX visit_classifications_conversation ON visit_classifications (conversation_id);
CREATE INDEX recordings_visit ON recordings (visit_id);
