-- farmbot schema 10: several machines on one database. Which node runs each agent, the
-- nodes and their heartbeats, commands routed to the node that must run them, and where
-- each chat's inbound updates stand (Telegram's offset) with the updates taken but not
-- yet handled. As migrations/sqlite/0006_cluster.sql.

ALTER TABLE agents ADD COLUMN node TEXT COLLATE "C" NOT NULL DEFAULT '';
CREATE INDEX agents_node ON agents(node);

-- One row per node. heartbeat_at is the database's clock, so skew between machines
-- does not matter; down_since is set (once, by the leader) when a node went quiet.
CREATE TABLE nodes (
    name          TEXT COLLATE "C" PRIMARY KEY,
    url           TEXT NOT NULL DEFAULT '',
    version       TEXT NOT NULL DEFAULT '',
    projects      TEXT NOT NULL DEFAULT '[]',
    leads         BOOLEAN NOT NULL DEFAULT FALSE,
    started_at    DOUBLE PRECISION NOT NULL,
    heartbeat_at  DOUBLE PRECISION NOT NULL,
    stopped_at    DOUBLE PRECISION,
    down_since    DOUBLE PRECISION
);

-- A command taken on one node (origin) for another (target), and its reply. A claim
-- holds a lease; source is the inbound update it came from, so a redelivered update
-- finds its command instead of queueing it twice. Claimed with FOR UPDATE SKIP LOCKED;
-- NOTIFY farmbot_commands (payload: the target) and farmbot_replies (origin:id) wake
-- the nodes concerned.
CREATE TABLE routed_commands (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    origin        TEXT NOT NULL,
    target        TEXT NOT NULL,
    platform      TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    chat          TEXT NOT NULL,
    display_name  TEXT NOT NULL DEFAULT '',
    text          TEXT NOT NULL,
    button        BOOLEAN NOT NULL DEFAULT FALSE,
    source        TEXT UNIQUE,
    status        TEXT NOT NULL CHECK (status IN ('pending', 'claimed', 'done', 'cancelled')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    claimed_by    TEXT,
    claim         TEXT,
    lease_until   DOUBLE PRECISION,
    reply         TEXT,
    created_at    DOUBLE PRECISION NOT NULL,
    deadline      DOUBLE PRECISION NOT NULL,
    done_at       DOUBLE PRECISION
);
CREATE INDEX routed_commands_open ON routed_commands(target, id)
    WHERE status != 'done' AND status != 'cancelled';

-- The next update a chat interface asks its platform for (Telegram's getUpdates offset).
CREATE TABLE chat_positions (
    interface   TEXT NOT NULL,
    key         TEXT NOT NULL,
    position    BIGINT NOT NULL,
    updated_at  DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (interface, key)
);

-- Updates taken from a platform (and confirmed to it) that are being or have been handled.
CREATE TABLE inbound_updates (
    interface   TEXT NOT NULL,
    key         TEXT NOT NULL,
    update_id   BIGINT NOT NULL,
    body        TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('new', 'handling', 'done')),
    handler     TEXT,
    created_at  DOUBLE PRECISION NOT NULL,
    done_at     DOUBLE PRECISION,
    PRIMARY KEY (interface, key, update_id)
);
CREATE INDEX inbound_updates_open ON inbound_updates(interface, key, update_id)
    WHERE status != 'done';
