-- farmbot schema 4: what the agent state machine tracks about each agent, so a restart
-- does not reset stuck detection (since when quiet, errors already reported, escalation).

CREATE TABLE agent_tracks (
    agent_id    TEXT PRIMARY KEY,
    data        TEXT NOT NULL,
    updated_at  REAL NOT NULL
);
