-- farmbot schema 8: the copies of one alert (a gate's, dedupe key "gate.opened:<id>")
-- found by their dedupe key alone, so a decided gate's buttons come off every message
-- that showed them. (0006 is left free: another branch may take it.)

CREATE INDEX outbox_copies ON outbox(dedupe_key, id) WHERE dedupe_key != '';
