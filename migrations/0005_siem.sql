-- How far each SIEM webhook has received the audit chain: events after `last_seq` are still to deliver.
CREATE TABLE siem_cursors (
    name TEXT PRIMARY KEY,
    last_seq BIGINT NOT NULL
);
