-- The jobs table and the indexes its queries need. Times are unix
-- microseconds; payload, result, errors and tags are JSON text.
CREATE TABLE jobs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    kind             TEXT    NOT NULL,
    queue            TEXT    NOT NULL,
    payload          TEXT    NOT NULL,
    priority         INTEGER NOT NULL,
    state            TEXT    NOT NULL,
    attempt          INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    run_at           INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER,
    timeout_us       INTEGER,
    unique_key       TEXT,
    tags             TEXT    NOT NULL DEFAULT '[]',
    result           TEXT,
    errors           TEXT    NOT NULL DEFAULT '[]',
    lease_expires_at INTEGER,
    worker           TEXT
);

-- Claim: due jobs of a queue in priority, run_at, id order.
CREATE INDEX jobs_claim ON jobs (queue, priority, run_at, id)
    WHERE state IN ('scheduled', 'available', 'retryable');

-- Live-job dedupe by unique key.
CREATE UNIQUE INDEX jobs_unique_live ON jobs (kind, unique_key)
    WHERE unique_key IS NOT NULL AND state NOT IN ('completed', 'failed', 'cancelled');

-- Lease rescue (queries name the partial indexes: without statistics the
-- planner would prefer jobs_state_id and scan every running job).
CREATE INDEX jobs_lease ON jobs (lease_expires_at) WHERE state = 'running';

-- Promotion of scheduled and retryable jobs whose time has come.
CREATE INDEX jobs_due ON jobs (run_at) WHERE state IN ('scheduled', 'retryable');

-- Pruning of terminal jobs (only they have finished_at).
CREATE INDEX jobs_finished ON jobs (state, finished_at) WHERE finished_at IS NOT NULL;

-- Listing, newest first, by state, kind or queue.
CREATE INDEX jobs_state_id ON jobs (state, id);
CREATE INDEX jobs_kind_id ON jobs (kind, id);
CREATE INDEX jobs_queue_id ON jobs (queue, id);
