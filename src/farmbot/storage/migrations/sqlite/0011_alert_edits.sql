-- farmbot schema 11: when each delivered copy of an alert was edited (a decided or stale
-- gate's buttons taken off), NULL while it was not, so an edit owed is still known after
-- a restart. outbox_unedited finds the delivered copies of gates' alerts (dedupe key
-- "gate.opened:<id>", see alerts/rules.py) not edited yet without reading every delivered
-- row: only the copies of gates still open and those whose edit is owed, so it stays
-- small however large the outbox grows. A row has a message_ref only once delivered (and
-- a delivered row never changes state again), so the condition names no status: the
-- lookup has no "status = ?" that would draw the planner to outbox_status instead.

ALTER TABLE outbox ADD COLUMN edited_at REAL;

CREATE INDEX outbox_unedited ON outbox(id)
    WHERE edited_at IS NULL AND message_ref IS NOT NULL
    AND substr(dedupe_key, 1, 12) = 'gate.opened:';
