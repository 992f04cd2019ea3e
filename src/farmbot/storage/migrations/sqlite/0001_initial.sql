-- farmbot schema 1: projects, agents, prompts, events, gates, audit log, button actions.
-- Times are UTC seconds since the epoch (REAL). JSON columns hold objects as text.

CREATE TABLE projects (
    name        TEXT PRIMARY KEY,
    path        TEXT NOT NULL,
    active      INTEGER NOT NULL DEFAULT 1,
    verify      TEXT,
    is_git      INTEGER NOT NULL DEFAULT 0,
    updated_at  REAL NOT NULL
);

CREATE TABLE agents (
    id           TEXT PRIMARY KEY,
    project      TEXT NOT NULL REFERENCES projects(name),
    kind         TEXT NOT NULL CHECK (kind IN ('architect', 'builder', 'shell')),
    profile      TEXT NOT NULL,
    number       INTEGER,
    workdir      TEXT NOT NULL,
    branch       TEXT,
    desired      TEXT NOT NULL CHECK (desired IN ('running', 'stopped')),
    state        TEXT NOT NULL,
    state_reason TEXT NOT NULL DEFAULT '',
    created_at   REAL NOT NULL,
    updated_at   REAL NOT NULL,
    state_since  REAL NOT NULL
);
CREATE INDEX agents_project ON agents(project);

CREATE TABLE prompts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id     TEXT NOT NULL REFERENCES agents(id),
    text         TEXT NOT NULL,
    source       TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed', 'cancelled')),
    wait_ready   INTEGER NOT NULL DEFAULT 0,
    created_at   REAL NOT NULL,
    delivered_at REAL,
    error        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX prompts_pending ON prompts(agent_id, id) WHERE status = 'pending';

CREATE TABLE events (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    ts        REAL NOT NULL,
    kind      TEXT NOT NULL,
    agent_id  TEXT,
    project   TEXT,
    data      TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX events_agent ON events(agent_id, id);

CREATE TABLE gates (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT NOT NULL,
    agent_id    TEXT,
    project     TEXT,
    title       TEXT NOT NULL,
    detail      TEXT NOT NULL DEFAULT '',
    status      TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'stale')),
    created_at  REAL NOT NULL,
    decided_by  TEXT,
    decided_at  REAL,
    reason      TEXT NOT NULL DEFAULT '',
    payload     TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX gates_pending ON gates(status) WHERE status = 'pending';

CREATE TABLE audit (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    ts         REAL NOT NULL,
    platform   TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    user_name  TEXT,
    chat       TEXT NOT NULL DEFAULT '',
    command    TEXT NOT NULL,
    outcome    TEXT NOT NULL,
    detail     TEXT NOT NULL DEFAULT ''
);

-- Commands behind buttons too long to carry in a platform's callback data.
CREATE TABLE actions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    command     TEXT NOT NULL UNIQUE,
    created_at  REAL NOT NULL
);
