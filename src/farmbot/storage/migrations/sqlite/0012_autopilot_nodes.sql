-- farmbot schema 12: the autopilot on several machines. Which node each of its builders
-- runs on (chosen, and recorded, before the builder is spawned there), the autopilot's
-- steps routed to the node that carries them out (kind 'step': the step as JSON in
-- text), each under the key of the recorded state it carries out, so that a new leader
-- finds a step already queued instead of queueing it again (a step cut short and run
-- again gets the next generation), and how many deploys each wave has started.

ALTER TABLE autopilot_agents ADD COLUMN node TEXT NOT NULL DEFAULT '';

ALTER TABLE routed_commands ADD COLUMN kind TEXT NOT NULL DEFAULT 'command'
    CHECK (kind IN ('command', 'step'));
ALTER TABLE routed_commands ADD COLUMN step_key TEXT;
ALTER TABLE routed_commands ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX routed_commands_step ON routed_commands(step_key, generation)
    WHERE step_key IS NOT NULL;

ALTER TABLE waves ADD COLUMN deploys INTEGER NOT NULL DEFAULT 0;
