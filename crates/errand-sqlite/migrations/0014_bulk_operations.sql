-- Bulk actions on jobs (docs/decisions/0027): one row per operation, its
-- progress stored so it survives a restart and any node can show it. target
-- is JSON ({"ids": [...]} or {"filter": {...}}); each step takes the target
-- jobs with ids below cursor, highest first, and moves cursor down.
CREATE TABLE bulk_operations (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    action      TEXT    NOT NULL,
    target      TEXT    NOT NULL,
    actor       TEXT,
    state       TEXT    NOT NULL,
    matched     INTEGER NOT NULL DEFAULT 0,
    changed     INTEGER NOT NULL DEFAULT 0,
    cursor      INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    finished_at INTEGER,
    error       TEXT
);

-- Listing by state (the running ones, for resuming), newest first.
CREATE INDEX bulk_operations_state ON bulk_operations (state, id);

-- Pruning of ended operations.
CREATE INDEX bulk_operations_finished ON bulk_operations (finished_at)
    WHERE finished_at IS NOT NULL;
