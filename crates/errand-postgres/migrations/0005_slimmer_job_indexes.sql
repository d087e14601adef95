-- Claims and finishes change indexed columns, so PostgreSQL cannot update
-- a job in place (no HOT update) and inserts an entry into every index
-- whose predicate the new row matches, on each state change. The listing
-- indexes paid for that on every job while serving only operator listings:
-- by kind and by queue, listings now walk the primary key newest-first and
-- filter; by state, the index keeps only the states a healthy job never
-- passes through (scheduled, retryable, failed, cancelled), where a walk
-- would be long. available, running and completed jobs are listed from the
-- primary key: they are the recent and plentiful ones.
DROP INDEX IF EXISTS jobs_kind_id;
DROP INDEX IF EXISTS jobs_queue_id;
DROP INDEX IF EXISTS jobs_state_id;
CREATE INDEX jobs_state_id ON jobs (state, id)
    WHERE state IN ('scheduled', 'retryable', 'failed', 'cancelled');
