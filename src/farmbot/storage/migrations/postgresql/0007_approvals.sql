-- farmbot schema 7: how a gate was decided (once, or for the rest of the agent's session),
-- and the platform's handle of each alert sent, so a decided gate's buttons can be taken
-- off every message that showed them.

ALTER TABLE gates ADD COLUMN scope TEXT NOT NULL DEFAULT '';

ALTER TABLE outbox ADD COLUMN message_ref TEXT;
