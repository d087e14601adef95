-- The node registry (one row per live errand process, refreshed by its
-- heartbeat) and leader leases (one row per role, e.g. maintenance).
CREATE TABLE nodes (
    name       TEXT    PRIMARY KEY,
    started_at INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    queues     TEXT    NOT NULL,
    running    INTEGER NOT NULL,
    http       TEXT
);

CREATE TABLE leaders (
    role       TEXT    PRIMARY KEY,
    node       TEXT    NOT NULL,
    expires_at INTEGER NOT NULL
);
