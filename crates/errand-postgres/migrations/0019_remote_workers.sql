-- Remote workers (the HTTP worker protocol) in the node registry: their
-- host, process and library as JSON (NULL for errand's own nodes), and
-- whether an operator asked the node to drain (kept across its heartbeats).
ALTER TABLE nodes ADD COLUMN remote JSONB;
ALTER TABLE nodes ADD COLUMN draining BOOLEAN NOT NULL DEFAULT false;
