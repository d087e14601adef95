-- Cheaper index upkeep for every change of a job's state (docs/decisions/0035).
--
-- SQLite tests `state IN (a, b, c)` (more than two values) and `NOT IN`
-- by building a temporary b-tree of the values, once per execution of the
-- statement. A partial index's condition is tested for the old and the new
-- row of every UPDATE that changes `state`, so the fenced finish (one
-- UPDATE per job) built six of them per job, and every INSERT four: about a
-- third of the writer's time per job. The same conditions written with `=`,
-- `<>`, OR and AND are plain comparisons. Queries that use these indexes
-- repeat the new text word for word (crate::rows::DUE_STATES and LIVE).
DROP INDEX jobs_claim;
CREATE INDEX jobs_claim ON jobs (queue, priority, run_at, id)
    WHERE (state = 'scheduled' OR state = 'available' OR state = 'retryable');

DROP INDEX jobs_unique_live;
CREATE UNIQUE INDEX jobs_unique_live ON jobs (kind, unique_key)
    WHERE unique_key IS NOT NULL
      AND (state <> 'completed' AND state <> 'failed' AND state <> 'cancelled');

DROP INDEX jobs_batch_live;
CREATE INDEX jobs_batch_live ON jobs (batch_id)
    WHERE batch_id IS NOT NULL
      AND (state <> 'completed' AND state <> 'failed' AND state <> 'cancelled');

-- One index of the running jobs instead of two (lease rescue by
-- lease_expires_at, concurrency limits by kind): each claim and each end
-- of an attempt changed an entry in both. Running jobs are few (bounded by
-- the nodes' concurrency), so rescue scans them all; a limit's count is a
-- range of one kind.
DROP INDEX jobs_lease;
DROP INDEX jobs_running_kind;
CREATE INDEX jobs_running ON jobs (kind, lease_expires_at) WHERE state = 'running';

-- Listing by state leaves the running jobs to jobs_running (they are read
-- through it and sorted by id), so a claim only removes the job's entry
-- here and the end of its attempt only adds one, instead of each moving it.
-- Queries by state repeat `state <> 'running'` or `state = 'running'`.
DROP INDEX jobs_state_id;
CREATE INDEX jobs_state_id ON jobs (state, id) WHERE state <> 'running';
