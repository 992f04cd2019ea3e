-- farmbot schema 9: retention. As migrations/sqlite/0009_retention.sql.

CREATE INDEX alerts_event ON alerts(event_id);

CREATE INDEX outbox_alert ON outbox(alert_id);
