-- farmbot schema 1: projects, agents, prompts, events, gates, audit log, button actions.
-- The same schema as migrations/sqlite/0001_initial.sql, in PostgreSQL's dialect: ids are
-- identity columns, flags BOOLEAN, times UTC seconds since the epoch (DOUBLE PRECISION).
-- JSON columns hold objects as text, as in SQLite: farmbot never queries inside them.
-- The text keys farmbot sorts by are COLLATE "C": byte order, as SQLite compares text,
-- whatever collation the server's database was created with.

CREATE TABLE projects (
    name        TEXT COLLATE "C" PRIMARY KEY,
    path        TEXT NOT NULL,
    active      BOOLEAN NOT NULL DEFAULT TRUE,
    verify      TEXT,
    is_git      BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at  DOUBLE PRECISION NOT NULL
);

CREATE TABLE agents (
    id           TEXT COLLATE "C" PRIMARY KEY,
    project      TEXT NOT NULL REFERENCES projects(name),
    kind         TEXT NOT NULL CHECK (kind IN ('architect', 'builder', 'shell')),
    profile      TEXT NOT NULL,
    number       INTEGER,
    workdir      TEXT NOT NULL,
    branch       TEXT,
    desired      TEXT NOT NULL CHECK (desired IN ('running', 'stopped')),
    state        TEXT NOT NULL,
    state_reason TEXT NOT NULL DEFAULT '',
    created_at   DOUBLE PRECISION NOT NULL,
    updated_at   DOUBLE PRECISION NOT NULL,
    state_since  DOUBLE PRECISION NOT NULL
);
CREATE INDEX agents_project ON agents(project);

CREATE TABLE prompts (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agent_id     TEXT NOT NULL REFERENCES agents(id),
    text         TEXT NOT NULL,
    source       TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed', 'cancelled')),
    wait_ready   BOOLEAN NOT NULL DEFAULT FALSE,
    created_at   DOUBLE PRECISION NOT NULL,
    delivered_at DOUBLE PRECISION,
    error        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX prompts_pending ON prompts(agent_id, id) WHERE status = 'pending';

CREATE TABLE events (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ts        DOUBLE PRECISION NOT NULL,
    kind      TEXT NOT NULL,
    agent_id  TEXT,
    project   TEXT,
    data      TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX events_agent ON events(agent_id, id);

CREATE TABLE gates (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind        TEXT NOT NULL,
    agent_id    TEXT,
    project     TEXT,
    title       TEXT NOT NULL,
    detail      TEXT NOT NULL DEFAULT '',
    status      TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'stale')),
    created_at  DOUBLE PRECISION NOT NULL,
    decided_by  TEXT,
    decided_at  DOUBLE PRECISION,
    reason      TEXT NOT NULL DEFAULT '',
    payload     TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX gates_pending ON gates(status) WHERE status = 'pending';

CREATE TABLE audit (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ts         DOUBLE PRECISION NOT NULL,
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
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    command     TEXT NOT NULL UNIQUE,
    created_at  DOUBLE PRECISION NOT NULL
);
