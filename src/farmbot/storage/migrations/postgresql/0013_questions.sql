-- farmbot schema 13: questions a chat put to one person. As
-- migrations/sqlite/0013_questions.sql.

CREATE TABLE questions (
    platform TEXT NOT NULL,
    chat TEXT NOT NULL,
    message TEXT NOT NULL,
    user_id TEXT NOT NULL,
    command TEXT NOT NULL,
    asked_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (platform, chat, message)
);

CREATE INDEX questions_asked_at ON questions(asked_at);
