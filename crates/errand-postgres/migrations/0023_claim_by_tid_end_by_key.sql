-- Cheaper claim and finish statements (docs/decisions/0041). Same results
-- and the same fencing; only how each statement reaches its rows changes.
--
-- errand_claim (as in 0021) updates the rows it locked by their tuple id
-- instead of looking each one up again through the primary key. A row
-- locked FOR UPDATE cannot move until this transaction ends, so the tuple
-- id the locking scan returns is the one the UPDATE finds. When the lock
-- had to follow a newer version of a row (a concurrent promotion left it
-- claimable), that version is not visible to the statement's snapshot and
-- the UPDATE skips it: the job stays due for the next claim, as if another
-- claimer had held it.
CREATE OR REPLACE FUNCTION errand_claim(
    p_now timestamptz,
    p_lease_until timestamptz,
    p_worker text,
    p_queue text,
    p_kinds text[],
    p_limit bigint
) RETURNS SETOF jobs
LANGUAGE plpgsql
VOLATILE
SET enable_bitmapscan = off
SET enable_sort = off
SET plan_cache_mode = force_generic_plan
AS $$
BEGIN
    RETURN QUERY
    UPDATE jobs SET state = 'running', attempt = attempt + 1, fence = fence + 1,
        started_at = p_now, lease_expires_at = p_lease_until, worker = p_worker
    WHERE ctid = ANY(ARRAY(
        SELECT ctid FROM jobs
        WHERE state IN ('scheduled', 'available', 'retryable')
          AND queue = p_queue AND run_at <= p_now
          AND (cardinality(p_kinds) = 0 OR kind = ANY(p_kinds))
          AND NOT EXISTS (SELECT 1 FROM queues q WHERE q.name = p_queue AND q.paused)
        ORDER BY priority, run_at, id
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED))
    RETURNING *;
END
$$;

-- Ends attempts (finishes and lease rescues, src/ops.rs write_endings):
-- one row per attempt in the arrays, applied only to a job still running
-- under that fence (and, with p_expired_before, whose lease expired
-- before it; with p_plain_only, outside batches). Answers the attempts
-- ended with what the caller reports on.
--
-- The statement was sent as is until now, and PostgreSQL joined the
-- arrays to the jobs by hashing every running job, found through
-- jobs_running (5,000-6,000 rows for a finish of 1,000 at concurrency
-- 512), because the statistics seldom know how many jobs run. Here each
-- attempt is looked up by its primary key instead: the plan is kept for
-- the session without the arguments' values, hash and merge joins are
-- off, and the running test compares with a variable, which keeps the
-- partial index jobs_running out of the plan (its predicate cannot be
-- proved from a parameter), so a nested loop over the key is the only
-- cheap plan whatever the statistics say.
CREATE FUNCTION errand_end_attempts(
    p_ids bigint[],
    p_fences bigint[],
    p_states text[],
    p_run_at timestamptz[],
    p_results jsonb[],
    p_errors text[],
    p_refunds int[],
    p_finished_at timestamptz[],
    p_now text,
    p_expired_before timestamptz,
    p_plain_only boolean
) RETURNS TABLE (
    ended_id bigint,
    ended_fence bigint,
    ended_state text,
    ended_queue text,
    ended_batch bigint,
    ended_kind text,
    ended_started_at timestamptz
)
LANGUAGE plpgsql
VOLATILE
SET plan_cache_mode = force_generic_plan
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
DECLARE
    running CONSTANT text := 'running';
BEGIN
    -- resolve never answers running, so the lease always ends here. An
    -- error is recorded under the attempt that ran, before a refund
    -- lowers it.
    RETURN QUERY
    UPDATE jobs j SET state = u.state, run_at = COALESCE(u.run_at, j.run_at),
        result = u.result,
        errors = CASE WHEN u.error IS NULL THEN j.errors ELSE j.errors ||
            jsonb_build_array(jsonb_build_object('attempt', j.attempt, 'at', p_now,
                'error', u.error)) END,
        attempt = j.attempt - u.refund, finished_at = u.finished_at,
        lease_expires_at = NULL, worker = NULL
    FROM unnest(p_ids, p_fences, p_states, p_run_at, p_results, p_errors, p_refunds,
        p_finished_at) AS u(id, fence, state, run_at, result, error, refund, finished_at)
    WHERE j.id = u.id AND j.fence = u.fence AND j.state = running
      AND (p_expired_before IS NULL OR j.lease_expires_at < p_expired_before)
      AND (NOT p_plain_only OR j.batch_id IS NULL)
    RETURNING j.id, u.fence, j.state, j.queue, j.batch_id, j.kind, j.started_at;
END
$$;
