-- farmbot schema 12: the autopilot on several machines: each builder's node, the
-- autopilot's steps routed to the node that carries them out, keyed by the recorded
-- state they carry out, and each wave's deploys. As migrations/sqlite/0012_autopilot_nodes.sql.

ALTER TABLE autopilot_agents ADD COLUMN node TEXT COLLATE "C" NOT NULL DEFAULT '';

ALTER TABLE routed_commands ADD COLUMN kind TEXT NOT NULL DEFAULT 'command'
    CHECK (kind IN ('command', 'step'));
ALTER TABLE routed_commands ADD COLUMN step_key TEXT;
ALTER TABLE routed_commands ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX routed_commands_step ON routed_commands(step_key, generation)
    WHERE step_key IS NOT NULL;

ALTER TABLE waves ADD COLUMN deploys INTEGER NOT NULL DEFAULT 0;
