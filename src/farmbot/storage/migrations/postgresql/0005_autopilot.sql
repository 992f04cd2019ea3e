-- farmbot schema 5: the autopilot. Tasks (their dependencies and the history of every
-- transition), runs and their waves, the builders the autopilot spawned, and the mode a
-- person set for a project. As migrations/sqlite/0005_autopilot.sql, in PostgreSQL's
-- dialect (identity ids, DOUBLE PRECISION times, COLLATE "C" on the names sorted by).

-- When farmbot started typing a prompt: one still pending with it set was cut short
-- (pasted, perhaps not submitted), so delivery finishes it rather than typing it again.
ALTER TABLE prompts ADD COLUMN typing_at DOUBLE PRECISION;

CREATE TABLE tasks (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project         TEXT COLLATE "C" NOT NULL,
    title           TEXT NOT NULL,
    body            TEXT NOT NULL DEFAULT '',
    priority        INTEGER NOT NULL DEFAULT 1 CHECK (priority IN (0, 1, 2)),
    state           TEXT NOT NULL CHECK (state IN ('pending', 'ready', 'working', 'verifying',
                                                   'review', 'landing', 'done', 'failed',
                                                   'cancelled')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    run_id          BIGINT,
    wave            INTEGER,
    agent_id        TEXT COLLATE "C",
    branch          TEXT,
    base_branch     TEXT,
    base_commit     TEXT,
    started_at      DOUBLE PRECISION,
    deadline        DOUBLE PRECISION,
    prompt_id       BIGINT,
    feedback        TEXT NOT NULL DEFAULT '',
    note            TEXT NOT NULL DEFAULT '',
    qa_run_id       BIGINT,
    gate_id         BIGINT,
    land_base       TEXT,
    landed_commit   TEXT,
    landed_commits  TEXT NOT NULL DEFAULT '[]',
    landed_at       DOUBLE PRECISION,
    reason          TEXT NOT NULL DEFAULT '',
    created_by      TEXT NOT NULL,
    created_at      DOUBLE PRECISION NOT NULL,
    updated_at      DOUBLE PRECISION NOT NULL
);
CREATE INDEX tasks_open ON tasks(project, state);
CREATE INDEX tasks_run ON tasks(run_id);

-- task_id waits for depends_on to be done.
CREATE TABLE task_deps (
    task_id     BIGINT NOT NULL REFERENCES tasks(id),
    depends_on  BIGINT NOT NULL REFERENCES tasks(id),
    PRIMARY KEY (task_id, depends_on)
);
CREATE INDEX task_deps_reverse ON task_deps(depends_on);

CREATE TABLE task_history (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_id   BIGINT NOT NULL REFERENCES tasks(id),
    ts        DOUBLE PRECISION NOT NULL,
    state     TEXT NOT NULL,
    previous  TEXT,
    by        TEXT NOT NULL,
    detail    TEXT NOT NULL DEFAULT ''
);
CREATE INDEX task_history_task ON task_history(task_id, id);

CREATE TABLE runs (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project      TEXT COLLATE "C" NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('running', 'paused', 'done', 'blocked')),
    started_by   TEXT NOT NULL,
    created_at   DOUBLE PRECISION NOT NULL,
    updated_at   DOUBLE PRECISION NOT NULL,
    finished_at  DOUBLE PRECISION,
    reason       TEXT NOT NULL DEFAULT ''
);
-- At most one open run per project.
CREATE UNIQUE INDEX runs_open ON runs(project) WHERE state IN ('running', 'paused');

CREATE TABLE waves (
    run_id     BIGINT NOT NULL REFERENCES runs(id),
    number     INTEGER NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('open', 'staging', 'gate', 'prod', 'closed')),
    gate_id    BIGINT,
    staging    TEXT NOT NULL DEFAULT '',
    prod       TEXT NOT NULL DEFAULT '',
    closed_at  DOUBLE PRECISION,
    PRIMARY KEY (run_id, number)
);

-- Builders the autopilot spawned (reserved before they are spawned): only these get
-- tasks without a person naming them.
CREATE TABLE autopilot_agents (
    agent_id    TEXT COLLATE "C" PRIMARY KEY,
    project     TEXT COLLATE "C" NOT NULL,
    number      INTEGER NOT NULL,
    created_at  DOUBLE PRECISION NOT NULL
);

CREATE TABLE autopilot_modes (
    project  TEXT COLLATE "C" PRIMARY KEY,
    mode     TEXT NOT NULL CHECK (mode IN ('off', 'observe', 'fix_forward', 'auto_staging',
                                           'auto_prod')),
    set_by   TEXT NOT NULL,
    set_at   DOUBLE PRECISION NOT NULL
);
