-- farmbot schema 11: when each delivered copy of an alert was edited. As
-- migrations/sqlite/0011_alert_edits.sql.

ALTER TABLE outbox ADD COLUMN edited_at DOUBLE PRECISION;

CREATE INDEX outbox_unedited ON outbox(id)
    WHERE edited_at IS NULL AND message_ref IS NOT NULL
    AND substr(dedupe_key, 1, 12) = 'gate.opened:';
