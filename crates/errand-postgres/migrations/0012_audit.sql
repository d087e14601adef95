-- The audit log (docs/decisions/0023): one row per admin action, written in
-- the action's own transaction; listed newest (highest id) first.
CREATE TABLE audit (
    id     bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at     timestamptz NOT NULL,
    actor  text        NOT NULL,
    action text        NOT NULL,
    target text        NOT NULL,
    change jsonb       NOT NULL
);
-- Pruning by age.
CREATE INDEX audit_at ON audit (at);
