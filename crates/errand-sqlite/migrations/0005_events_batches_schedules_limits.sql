-- Issue 5: batches, events, schedule ticks, global kind limits and
-- unique_for. Times are unix microseconds; JSON columns are text.
--
-- Batch completion is decided in Rust (crate::batches), not in a trigger:
-- the on-complete job's payload is built by errand-core's
-- on_complete_payload, and the writer must announce its queue to idle
-- workers, which a trigger cannot do. Every terminal write path calls that
-- one function inside the same transaction as the job's end.

-- The batch a job belongs to (NULL for most jobs, so the partial indexes
-- below cost nothing for them).
ALTER TABLE jobs ADD COLUMN batch_id INTEGER;

-- A batch's jobs in submission order, and its counts by state.
CREATE INDEX jobs_batch ON jobs (batch_id, id) WHERE batch_id IS NOT NULL;

-- "Is any job of this batch still to end?", asked on every batch job's
-- end: only live batch jobs are in it, so the answer is one probe.
CREATE INDEX jobs_batch_live ON jobs (batch_id)
    WHERE batch_id IS NOT NULL AND state NOT IN ('completed', 'failed', 'cancelled');

-- unique_for: the newest job of a kind and key, whatever its state. None
-- of its columns change after insert, so job updates never touch it.
CREATE INDEX jobs_unique_recent ON jobs (kind, unique_key, created_at)
    WHERE unique_key IS NOT NULL;

-- Concurrency limits count a kind's running jobs (expired leases included).
CREATE INDEX jobs_running_kind ON jobs (kind) WHERE state = 'running';

-- Batches. total is fixed at creation (jobs may be pruned before their
-- batch). The on_complete_* columns hold the resolved on-complete job,
-- enqueued once the last job ends; on_complete_kind is NULL without one.
CREATE TABLE batches (
    id                       INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at               INTEGER NOT NULL,
    total                    INTEGER NOT NULL,
    finished_at              INTEGER,
    on_complete_kind         TEXT,
    on_complete_queue        TEXT,
    on_complete_payload      TEXT,
    on_complete_priority     INTEGER,
    on_complete_max_attempts INTEGER,
    on_complete_timeout_us   INTEGER,
    on_complete_tags         TEXT,
    on_complete_job          INTEGER
);

-- Pruning of finished batches.
CREATE INDEX batches_finished ON batches (finished_at) WHERE finished_at IS NOT NULL;

-- Events. jobs is the JSON array of the listener jobs' ids in listener
-- order: written once, in the publish transaction, and kept after the
-- jobs themselves are pruned.
CREATE TABLE events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT    NOT NULL,
    data         TEXT    NOT NULL,
    unique_key   TEXT,
    published_at INTEGER NOT NULL,
    jobs         TEXT    NOT NULL DEFAULT '[]'
);

-- Dedupe by name and key; listing by name, newest first.
CREATE UNIQUE INDEX events_unique ON events (name, unique_key) WHERE unique_key IS NOT NULL;
CREATE INDEX events_name_id ON events (name, id);

-- Pruning of old events.
CREATE INDEX events_published ON events (published_at);

-- The latest tick each schedule fired for: a tick at or before it is
-- refused, so each tick enqueues once.
CREATE TABLE schedules (
    name       TEXT    PRIMARY KEY,
    tick       INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;

-- Starts of rate-limited kinds: one row per claim (starts = jobs it took),
-- for a sliding window. Rows older than the kind's window are deleted by
-- the next claim of the kind, so the table stays as small as the windows.
CREATE TABLE kind_starts (
    kind       TEXT    NOT NULL,
    started_at INTEGER NOT NULL,
    starts     INTEGER NOT NULL
);

CREATE INDEX kind_starts_kind ON kind_starts (kind, started_at);
