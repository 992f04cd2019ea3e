-- farmbot schema 2: usage-limit pauses, deferred prompts, QA runs, alerts and their outbox.

ALTER TABLE agents ADD COLUMN paused_until REAL;

ALTER TABLE prompts ADD COLUMN not_before REAL;

CREATE TABLE qa_runs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id     TEXT NOT NULL,
    project      TEXT NOT NULL,
    trigger      TEXT NOT NULL,
    command      TEXT NOT NULL,
    started_at   REAL NOT NULL,
    finished_at  REAL,
    exit_code    INTEGER,
    passed       INTEGER,
    timed_out    INTEGER NOT NULL DEFAULT 0,
    output_tail  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX qa_runs_agent ON qa_runs(agent_id, id);

-- What an event meant to a person. Written in the same transaction as its event.
CREATE TABLE alerts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id    INTEGER NOT NULL REFERENCES events(id),
    kind        TEXT NOT NULL,
    severity    TEXT NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    agent_id    TEXT,
    project     TEXT,
    title       TEXT NOT NULL,
    text        TEXT NOT NULL,
    pre         TEXT,
    buttons     TEXT NOT NULL DEFAULT '[]',
    dedupe_key  TEXT NOT NULL DEFAULT '',
    created_at  REAL NOT NULL
);

-- One row per alert and route. A row's id is its place in its channel's queue; repeats
-- of a dedupe_key fold into one row (count) and alert_id follows the newest of them.
CREATE TABLE outbox (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id         INTEGER NOT NULL REFERENCES alerts(id),
    interface        TEXT NOT NULL CHECK (interface != ''),
    channel          TEXT NOT NULL,
    dedupe_key       TEXT NOT NULL DEFAULT '',
    status           TEXT NOT NULL
                     CHECK (status IN ('pending', 'sending', 'delivered', 'dead')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  REAL NOT NULL,
    not_before       REAL,
    last_error       TEXT NOT NULL DEFAULT '',
    count            INTEGER NOT NULL DEFAULT 1,
    created_at       REAL NOT NULL,
    last_at          REAL NOT NULL,
    delivered_at     REAL
);
-- The open rows, whose heads are due (due_outbox), and the dead letters: delivered rows
-- pile up, so both are read by status.
CREATE INDEX outbox_status ON outbox(status, id);
-- The newest row of a dedupe key in a channel (folding repeats).
CREATE INDEX outbox_dedupe ON outbox(interface, channel, dedupe_key, id) WHERE dedupe_key != '';
