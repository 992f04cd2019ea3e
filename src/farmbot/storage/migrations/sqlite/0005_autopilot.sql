-- farmbot schema 5: the autopilot. Tasks (their dependencies and the history of every
-- transition), runs and their waves, the builders the autopilot spawned, and the mode a
-- person set for a project. Every step of a run is a row, so a restart carries on.

-- When farmbot started typing a prompt: one still pending with it set was cut short
-- (pasted, perhaps not submitted), so delivery finishes it rather than typing it again.
ALTER TABLE prompts ADD COLUMN typing_at REAL;

CREATE TABLE tasks (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    project         TEXT NOT NULL,
    title           TEXT NOT NULL,
    body            TEXT NOT NULL DEFAULT '',
    priority        INTEGER NOT NULL DEFAULT 1 CHECK (priority IN (0, 1, 2)),
    state           TEXT NOT NULL CHECK (state IN ('pending', 'ready', 'working', 'verifying',
                                                   'review', 'landing', 'done', 'failed',
                                                   'cancelled')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    run_id          INTEGER,
    wave            INTEGER,
    agent_id        TEXT,
    branch          TEXT,
    base_branch     TEXT,
    base_commit     TEXT,
    started_at      REAL,
    deadline        REAL,
    prompt_id       INTEGER,
    feedback        TEXT NOT NULL DEFAULT '',
    note            TEXT NOT NULL DEFAULT '',
    qa_run_id       INTEGER,
    gate_id         INTEGER,
    land_base       TEXT,
    landed_commit   TEXT,
    landed_commits  TEXT NOT NULL DEFAULT '[]',
    landed_at       REAL,
    reason          TEXT NOT NULL DEFAULT '',
    created_by      TEXT NOT NULL,
    created_at      REAL NOT NULL,
    updated_at      REAL NOT NULL
);
CREATE INDEX tasks_open ON tasks(project, state);
CREATE INDEX tasks_run ON tasks(run_id);

-- task_id waits for depends_on to be done.
CREATE TABLE task_deps (
    task_id     INTEGER NOT NULL REFERENCES tasks(id),
    depends_on  INTEGER NOT NULL REFERENCES tasks(id),
    PRIMARY KEY (task_id, depends_on)
);
CREATE INDEX task_deps_reverse ON task_deps(depends_on);

CREATE TABLE task_history (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id   INTEGER NOT NULL REFERENCES tasks(id),
    ts        REAL NOT NULL,
    state     TEXT NOT NULL,
    previous  TEXT,
    by        TEXT NOT NULL,
    detail    TEXT NOT NULL DEFAULT ''
);
CREATE INDEX task_history_task ON task_history(task_id, id);

CREATE TABLE runs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    project      TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('running', 'paused', 'done', 'blocked')),
    started_by   TEXT NOT NULL,
    created_at   REAL NOT NULL,
    updated_at   REAL NOT NULL,
    finished_at  REAL,
    reason       TEXT NOT NULL DEFAULT ''
);
-- At most one open run per project.
CREATE UNIQUE INDEX runs_open ON runs(project) WHERE state IN ('running', 'paused');

CREATE TABLE waves (
    run_id     INTEGER NOT NULL REFERENCES runs(id),
    number     INTEGER NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('open', 'staging', 'gate', 'prod', 'closed')),
    gate_id    INTEGER,
    staging    TEXT NOT NULL DEFAULT '',
    prod       TEXT NOT NULL DEFAULT '',
    closed_at  REAL,
    PRIMARY KEY (run_id, number)
);

-- Builders the autopilot spawned (reserved before they are spawned): only these get
-- tasks without a person naming them.
CREATE TABLE autopilot_agents (
    agent_id    TEXT PRIMARY KEY,
    project     TEXT NOT NULL,
    number      INTEGER NOT NULL,
    created_at  REAL NOT NULL
);

CREATE TABLE autopilot_modes (
    project  TEXT PRIMARY KEY,
    mode     TEXT NOT NULL CHECK (mode IN ('off', 'observe', 'fix_forward', 'auto_staging',
                                           'auto_prod')),
    set_by   TEXT NOT NULL,
    set_at   REAL NOT NULL
);
