-- farmbot schema 9: retention. Pruning deletes alerts and events whose outbox rows and
-- alerts are gone; these indexes let it find (and let the foreign keys check) the rows
-- that still point at each one without scanning the whole table.

CREATE INDEX alerts_event ON alerts(event_id);

CREATE INDEX outbox_alert ON outbox(alert_id);
