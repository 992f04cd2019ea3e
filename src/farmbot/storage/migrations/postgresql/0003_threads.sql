-- farmbot schema 3: the chat thread each key (an agent's alerts) is kept in, per channel.
-- As migrations/sqlite/0003_threads.sql.

-- thread_ref is the platform's handle of the thread's first message (a Slack ts).
CREATE TABLE chat_threads (
    interface   TEXT NOT NULL,
    channel     TEXT NOT NULL,
    key         TEXT NOT NULL,
    thread_ref  TEXT NOT NULL,
    updated_at  DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (interface, channel, key)
);
