-- Each node's non-closed per-kind breakers (kind -> state), refreshed by
-- its heartbeat.
ALTER TABLE nodes ADD COLUMN breakers jsonb NOT NULL DEFAULT '{}';
