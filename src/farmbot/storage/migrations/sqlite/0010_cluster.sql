-- farmbot schema 10: several machines on one database. Which node runs each agent, the
-- nodes and their heartbeats, commands routed to the node that must run them, and where
-- each chat's inbound updates stand (Telegram's offset) with the updates taken but not
-- yet handled. SQLite has one node; the tables exist so that the schema is the same.

ALTER TABLE agents ADD COLUMN node TEXT NOT NULL DEFAULT '';
CREATE INDEX agents_node ON agents(node);

-- One row per node. heartbeat_at is the database's clock, so skew between machines
-- does not matter; down_since is set (once, by the leader) when a node went quiet.
CREATE TABLE nodes (
    name          TEXT PRIMARY KEY,
    url           TEXT NOT NULL DEFAULT '',
    version       TEXT NOT NULL DEFAULT '',
    projects      TEXT NOT NULL DEFAULT '[]',
    leads         INTEGER NOT NULL DEFAULT 0,
    started_at    REAL NOT NULL,
    heartbeat_at  REAL NOT NULL,
    stopped_at    REAL,
    down_since    REAL
);

-- A command taken on one node (origin) for another (target), and its reply. A claim
-- holds a lease; source is the inbound update it came from, so a redelivered update
-- finds its command instead of queueing it twice.
CREATE TABLE routed_commands (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    origin        TEXT NOT NULL,
    target        TEXT NOT NULL,
    platform      TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    chat          TEXT NOT NULL,
    display_name  TEXT NOT NULL DEFAULT '',
    text          TEXT NOT NULL,
    button        INTEGER NOT NULL DEFAULT 0,
    source        TEXT UNIQUE,
    status        TEXT NOT NULL CHECK (status IN ('pending', 'claimed', 'done', 'cancelled')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    claimed_by    TEXT,
    claim         TEXT,
    lease_until   REAL,
    reply         TEXT,
    created_at    REAL NOT NULL,
    deadline      REAL NOT NULL,
    done_at       REAL
);
CREATE INDEX routed_commands_open ON routed_commands(target, id)
    WHERE status != 'done' AND status != 'cancelled';

-- The next update a chat interface asks its platform for (Telegram's getUpdates offset).
CREATE TABLE chat_positions (
    interface   TEXT NOT NULL,
    key         TEXT NOT NULL,
    position    INTEGER NOT NULL,
    updated_at  REAL NOT NULL,
    PRIMARY KEY (interface, key)
);

-- Updates taken from a platform (and confirmed to it) that are being or have been handled.
CREATE TABLE inbound_updates (
    interface   TEXT NOT NULL,
    key         TEXT NOT NULL,
    update_id   INTEGER NOT NULL,
    body        TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('new', 'handling', 'done')),
    handler     TEXT,
    created_at  REAL NOT NULL,
    done_at     REAL,
    PRIMARY KEY (interface, key, update_id)
);
CREATE INDEX inbound_updates_open ON inbound_updates(interface, key, update_id)
    WHERE status != 'done';
