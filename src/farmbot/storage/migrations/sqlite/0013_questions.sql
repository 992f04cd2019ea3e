-- farmbot schema 13: questions a chat put to one person (Telegram's "Why? Reply to this
-- message" after "Reject with reason…"), so the reply that answers one finds it after a
-- restart. Keyed by the message that asks; storage/questions.py forgets old ones.

CREATE TABLE questions (
    platform TEXT NOT NULL,
    chat TEXT NOT NULL,
    message TEXT NOT NULL,
    user_id TEXT NOT NULL,
    command TEXT NOT NULL,
    asked_at REAL NOT NULL,
    PRIMARY KEY (platform, chat, message)
);

CREATE INDEX questions_asked_at ON questions(asked_at);
