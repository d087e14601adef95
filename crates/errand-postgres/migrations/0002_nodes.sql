-- The node registry (one row per live errand process, refreshed by its
-- heartbeat) and leader leases (one row per role, e.g. maintenance).
CREATE TABLE nodes (
    name       text        PRIMARY KEY,
    started_at timestamptz NOT NULL,
    last_seen  timestamptz NOT NULL,
    queues     jsonb       NOT NULL,
    running    integer     NOT NULL,
    http       text
);

CREATE TABLE leaders (
    role       text        PRIMARY KEY,
    node       text        NOT NULL,
    expires_at timestamptz NOT NULL
);
