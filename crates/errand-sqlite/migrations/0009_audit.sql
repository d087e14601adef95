-- The audit log (docs/decisions/0023): one row per admin action, written in
-- the action's own transaction. AUTOINCREMENT: an id is never reused after
-- pruning, so a listing's cursor (an id) keeps its place.
CREATE TABLE audit (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    at     INTEGER NOT NULL,
    actor  TEXT    NOT NULL,
    action TEXT    NOT NULL,
    target TEXT    NOT NULL,
    change TEXT    NOT NULL
);
-- Pruning by age.
CREATE INDEX audit_at ON audit (at);
