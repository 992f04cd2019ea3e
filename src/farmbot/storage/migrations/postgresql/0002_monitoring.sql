-- farmbot schema 2: usage-limit pauses, deferred prompts, QA runs, alerts and their outbox.
-- As migrations/sqlite/0002_monitoring.sql.

ALTER TABLE agents ADD COLUMN paused_until DOUBLE PRECISION;

ALTER TABLE prompts ADD COLUMN not_before DOUBLE PRECISION;

CREATE TABLE qa_runs (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agent_id     TEXT NOT NULL,
    project      TEXT NOT NULL,
    trigger      TEXT NOT NULL,
    command      TEXT NOT NULL,
    started_at   DOUBLE PRECISION NOT NULL,
    finished_at  DOUBLE PRECISION,
    exit_code    INTEGER,
    passed       BOOLEAN,
    timed_out    BOOLEAN NOT NULL DEFAULT FALSE,
    output_tail  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX qa_runs_agent ON qa_runs(agent_id, id);

-- What an event meant to a person. Written in the same transaction as its event.
CREATE TABLE alerts (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id    BIGINT NOT NULL REFERENCES events(id),
    kind        TEXT NOT NULL,
    severity    TEXT NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    agent_id    TEXT,
    project     TEXT,
    title       TEXT NOT NULL,
    text        TEXT NOT NULL,
    pre         TEXT,
    buttons     TEXT NOT NULL DEFAULT '[]',
    dedupe_key  TEXT NOT NULL DEFAULT '',
    created_at  DOUBLE PRECISION NOT NULL
);

-- One row per alert and route. A row's id is its place in its channel's queue; repeats
-- of a dedupe_key fold into one row (count) and alert_id follows the newest of them.
-- Ids are taken and committed in order because every transaction holds farmbot's write
-- lock (storage/postgres.py), as SQLite's BEGIN IMMEDIATE does.
CREATE TABLE outbox (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id         BIGINT NOT NULL REFERENCES alerts(id),
    interface        TEXT NOT NULL CHECK (interface != ''),
    channel          TEXT NOT NULL,
    dedupe_key       TEXT NOT NULL DEFAULT '',
    status           TEXT NOT NULL
                     CHECK (status IN ('pending', 'sending', 'delivered', 'dead')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  DOUBLE PRECISION NOT NULL,
    not_before       DOUBLE PRECISION,
    last_error       TEXT NOT NULL DEFAULT '',
    count            INTEGER NOT NULL DEFAULT 1,
    created_at       DOUBLE PRECISION NOT NULL,
    last_at          DOUBLE PRECISION NOT NULL,
    delivered_at     DOUBLE PRECISION
);
-- The open rows, whose heads are due (due_outbox), and the dead letters: delivered rows
-- pile up, so both are read by status.
CREATE INDEX outbox_status ON outbox(status, id);
-- The newest row of a dedupe key in a channel (folding repeats).
CREATE INDEX outbox_dedupe ON outbox(interface, channel, dedupe_key, id) WHERE dedupe_key != '';
