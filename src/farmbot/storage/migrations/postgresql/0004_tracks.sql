-- farmbot schema 4: what the agent state machine tracks about each agent, so a restart
-- does not reset stuck detection (since when quiet, errors already reported, escalation).
-- As migrations/sqlite/0004_tracks.sql.

CREATE TABLE agent_tracks (
    agent_id    TEXT PRIMARY KEY,
    data        TEXT NOT NULL,
    updated_at  DOUBLE PRECISION NOT NULL
);
