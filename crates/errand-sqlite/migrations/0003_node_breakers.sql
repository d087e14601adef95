-- Each node's non-closed per-kind breakers (JSON object: kind -> state),
-- refreshed by its heartbeat.
ALTER TABLE nodes ADD COLUMN breakers TEXT NOT NULL DEFAULT '{}';
