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

-- errand_claim_limited exactly as in 0022, except that the claim it makes
-- under the shared lock (errand_claim's statement, inline) updates its
-- locked rows by tuple id too, for the reason given above. Its other ways
-- in call errand_claim, or update a handful of rows picked under the
-- exclusive lock, and are unchanged.
CREATE OR REPLACE FUNCTION errand_claim_limited(
    p_now timestamptz,
    p_lease_us bigint,
    p_worker text,
    p_queue text,
    p_kinds text[],
    p_limit bigint,
    p_limited text[],
    p_concurrency bigint[],
    p_rate_count bigint[],
    p_rate_per_us bigint[],
    p_rate_slice_us bigint[],
    p_locked boolean
) RETURNS TABLE (
    -- The job's columns, in the order of the jobs table (all NULL on the
    -- held row); named o_* so that no name in the body means two things.
    o_id bigint, o_kind text, o_queue text, o_payload jsonb, o_priority smallint,
    o_state text, o_attempt integer, o_max_attempts integer, o_run_at timestamptz,
    o_created_at timestamptz, o_started_at timestamptz, o_finished_at timestamptz,
    o_timeout_us bigint, o_unique_key text, o_tags text[], o_result jsonb, o_errors jsonb,
    o_lease_expires_at timestamptz, o_worker text, o_batch_id bigint, o_fence bigint,
    o_held boolean, o_retry_at timestamptz
)
LANGUAGE plpgsql
VOLATILE
-- As errand_claim (migration 0003): the ordered scan of jobs_claim, however
-- stale the statistics. Disabled sorts (still needed by the window
-- functions and the lock order) cost 10^10 to the planner, which would then
-- JIT-compile each statement: measured at 30 ms a statement.
-- plan_cache_mode: plpgsql keeps each statement's plan, but with its
-- default it plans every statement again on every call whenever the plan
-- for the call's values looks cheaper than the kept one, which for these
-- statements it always does: about 1 ms per usage read, most of the limited
-- path's extra cost (measured with pgbench, claims of 150 jobs: 6.9-8.7 ms
-- against 4.7-6.2 for errand_claim; kept plans 4.7-5.5 against 4.8-5.1).
-- The kept plans are the ones errand_claim uses anyway (an SQL function's
-- statement is planned without its arguments' values).
SET enable_bitmapscan = off
SET enable_sort = off
SET jit = off
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    -- The server's clock measures only how long this call waits, never
    -- what time it is.
    v_start timestamptz := clock_timestamp();
    v_now timestamptz := p_now;
    v_lease_until timestamptz := v_now + p_lease_us * interval '1 microsecond';
    v_jobs jobs[];
    v_ids bigint[];
    v_started_kinds text[];
    v_held text[];
    v_retry_at timestamptz;
    v_room bigint;
    v_count bigint;
    -- Whether any limited kind has a rate (else there is no log to keep).
    v_rated boolean := EXISTS (SELECT 1 FROM unnest(p_rate_per_us) AS r WHERE r IS NOT NULL);
BEGIN
    IF NOT p_locked AND p_limit <= errand_limit_shared_claim() AND NOT EXISTS (
        SELECT 1 FROM unnest(p_concurrency, p_rate_count) AS l(concurrency, rate_count)
        WHERE l.concurrency < 2 * errand_limit_shared_room()
           OR l.rate_count < 2 * errand_limit_shared_room())
    THEN
        -- Limits so wide that a kind is nearly always far from them: no
        -- unlocked guess (a usage read, counting the kind's running jobs),
        -- straight to the shared lock, which checks.
        v_room := errand_limit_shared_room();
    ELSIF NOT p_locked THEN
        -- Unlocked, so only a guess at the way in; each way checks again.
        SELECT min(u.room) INTO v_room FROM errand_limit_usage(
            v_now, p_limited, p_concurrency, p_rate_count, p_rate_per_us) AS u;
    END IF;

    IF NOT p_locked AND v_room >= errand_limit_shared_room()
       AND p_limit <= errand_limit_shared_claim() THEN
        PERFORM errand_limit_lock_shared(p_limited);
        -- A snapshot after the grant: every exclusive holder has committed.
        IF (SELECT min(u.room) FROM errand_limit_usage(
                v_now, p_limited, p_concurrency, p_rate_count, p_rate_per_us) AS u)
               < errand_limit_shared_room()
           OR clock_timestamp() - v_start > errand_limit_log_margin()
        THEN
            RAISE EXCEPTION USING ERRCODE = 'EL001',
                MESSAGE = 'errand: a limit came near while the claim waited for its lock',
                HINT = 'claim again with p_locked';
        END IF;
        -- errand_claim's statement (as in 0023, by tuple id), inline: its
        -- rows go out once instead of through errand_claim's result first.
        RETURN QUERY
        UPDATE jobs c SET state = 'running', attempt = c.attempt + 1, fence = c.fence + 1,
            started_at = v_now, lease_expires_at = v_lease_until, worker = p_worker
        WHERE c.ctid = ANY(ARRAY(
            SELECT j.ctid FROM jobs j
            WHERE j.state IN ('scheduled', 'available', 'retryable')
              AND j.queue = p_queue AND j.run_at <= v_now
              AND (cardinality(p_kinds) = 0 OR j.kind = ANY(p_kinds))
              AND NOT EXISTS (SELECT 1 FROM queues q WHERE q.name = p_queue AND q.paused)
            ORDER BY j.priority, j.run_at, j.id
            LIMIT p_limit
            FOR UPDATE SKIP LOCKED))
        RETURNING c.id, c.kind, c.queue, c.payload, c.priority, c.state, c.attempt,
            c.max_attempts, c.run_at, c.created_at, c.started_at, c.finished_at, c.timeout_us,
            c.unique_key, c.tags, c.result, c.errors, c.lease_expires_at, c.worker,
            c.batch_id, c.fence, false, NULL::timestamptz;
        GET DIAGNOSTICS v_count = ROW_COUNT;
        IF v_rated AND v_count > 0 THEN
            IF cardinality(p_kinds) = 1 AND p_kinds = p_limited THEN
                -- One kind claimed: every job started is of it.
                v_started_kinds := array_fill(p_kinds[1], ARRAY[v_count::integer]);
            ELSE
                -- As on the optimistic way below.
                SELECT array_agg(j.kind) INTO v_started_kinds FROM jobs j
                WHERE j.state = 'running' AND j.kind = ANY(p_limited)
                  AND j.lease_expires_at = v_lease_until AND j.started_at = v_now
                  AND j.worker = p_worker;
            END IF;
            IF v_started_kinds IS NOT NULL THEN
                PERFORM errand_limit_log(v_now, p_limited, p_rate_per_us,
                    p_rate_slice_us, v_started_kinds, pg_backend_pid());
            END IF;
        END IF;
        RETURN;
    END IF;

    IF NOT p_locked AND v_room >= p_limit THEN
        RETURN QUERY
        SELECT c.id, c.kind, c.queue, c.payload, c.priority, c.state, c.attempt,
            c.max_attempts, c.run_at, c.created_at, c.started_at, c.finished_at, c.timeout_us,
            c.unique_key, c.tags, c.result, c.errors, c.lease_expires_at, c.worker,
            c.batch_id, c.fence, false, NULL::timestamptz
        FROM errand_claim(v_now, v_lease_until, p_worker, p_queue, p_kinds, p_limit) AS c;
        IF NOT FOUND THEN
            -- Nothing due: nothing started, nothing held back.
            RETURN;
        END IF;
        PERFORM errand_limit_lock(p_limited);
        -- This claim's own starts of limited kinds: its jobs are the running
        -- ones it stamped with its instant, lease and worker (through
        -- jobs_running, one range per kind).
        SELECT array_agg(j.kind) INTO v_started_kinds FROM jobs j
        WHERE j.state = 'running' AND j.kind = ANY(p_limited)
          AND j.lease_expires_at = v_lease_until AND j.started_at = v_now
          AND j.worker = p_worker;
        IF EXISTS (
            SELECT 1 FROM errand_limit_usage(
                v_now, p_limited, p_concurrency, p_rate_count, p_rate_per_us) AS u
            LEFT JOIN (
                SELECT k.kind, count(*) AS n FROM unnest(v_started_kinds) AS k(kind)
                GROUP BY 1
            ) AS mine ON mine.kind = u.kind
            WHERE u.by_concurrency < 0 OR u.by_rate < COALESCE(mine.n, 0))
           OR clock_timestamp() - v_start > errand_limit_log_margin()
        THEN
            RAISE EXCEPTION USING ERRCODE = 'EL001',
                MESSAGE = 'errand: a limit ran out while the claim waited for its lock',
                HINT = 'claim again with p_locked';
        END IF;
        IF v_rated AND v_started_kinds IS NOT NULL THEN
            PERFORM errand_limit_log(v_now, p_limited, p_rate_per_us, p_rate_slice_us,
                v_started_kinds, 0);
        END IF;
        RETURN;
    END IF;

    PERFORM errand_limit_lock(p_limited);
    -- The caller's instant, moved on by the wait for the lock.
    v_now := p_now + (clock_timestamp() - v_start);

    -- Candidates locked FOR UPDATE SKIP LOCKED: per limited kind at most
    -- its room plus one (the extra row tells whether jobs were held back),
    -- and for the other kinds up to the claim's limit. Walked in claim
    -- order, a candidate is taken while the claim has taken fewer than
    -- p_limit and its kind has room left; a limited kind is held when one
    -- of its candidates is passed over before the claim is full.
    WITH usage AS (
        SELECT u.kind, u.room FROM errand_limit_usage(
            v_now, p_limited, p_concurrency, p_rate_count, p_rate_per_us) AS u
    ),
    takes AS (
        SELECT kind, LEAST(room, p_limit) + 1 AS take FROM usage
        UNION ALL
        SELECT NULL, p_limit
        WHERE cardinality(p_kinds) = 0 OR EXISTS (
            SELECT 1 FROM unnest(p_kinds) AS k WHERE k <> ALL(p_limited))
    ),
    candidates AS (
        SELECT c.id, c.kind, c.priority, c.run_at FROM takes t
        CROSS JOIN LATERAL (
            SELECT j.id, j.kind, j.priority, j.run_at FROM jobs j
            WHERE j.state IN ('scheduled', 'available', 'retryable')
              AND j.queue = p_queue AND j.run_at <= v_now
              AND CASE WHEN t.kind IS NULL
                  THEN j.kind <> ALL(p_limited)
                      AND (cardinality(p_kinds) = 0 OR j.kind = ANY(p_kinds))
                  ELSE j.kind = t.kind END
              AND NOT EXISTS (SELECT 1 FROM queues q WHERE q.name = p_queue AND q.paused)
            ORDER BY j.priority, j.run_at, j.id
            LIMIT t.take
            FOR UPDATE OF j SKIP LOCKED) AS c
    ),
    fitting AS (
        SELECT c.*, (u.room IS NULL OR row_number() OVER (
            PARTITION BY c.kind ORDER BY c.priority, c.run_at, c.id) <= u.room) AS fits
        FROM candidates c LEFT JOIN usage u ON u.kind = c.kind
    ),
    walked AS (
        -- taken: candidates taken up to and including this one.
        SELECT f.*, count(*) FILTER (WHERE f.fits) OVER (
            ORDER BY f.priority, f.run_at, f.id ROWS UNBOUNDED PRECEDING) AS taken
        FROM fitting f
    )
    SELECT array_agg(w.id) FILTER (WHERE w.fits AND w.taken <= p_limit),
        array_agg(w.kind) FILTER (WHERE w.fits AND w.taken <= p_limit),
        array_agg(DISTINCT w.kind) FILTER (WHERE NOT w.fits AND w.taken < p_limit)
    INTO v_ids, v_started_kinds, v_held
    FROM walked w;

    IF v_held IS NOT NULL THEN
        -- The rate frees the next start at the oldest start in the window
        -- plus the window (now plus the window when this claim's start is
        -- the only one), if the rate rather than the concurrency bound it.
        SELECT min(COALESCE(u.oldest, v_now) + u.per) INTO v_retry_at
        FROM errand_limit_usage(
            v_now, p_limited, p_concurrency, p_rate_count, p_rate_per_us) AS u
        WHERE u.kind = ANY(v_held) AND u.per IS NOT NULL
          AND u.by_rate <= u.by_concurrency;
    END IF;

    IF v_rated THEN
        PERFORM errand_limit_log(v_now, p_limited, p_rate_per_us, p_rate_slice_us,
            v_started_kinds, 0);
    END IF;

    WITH claimed AS (
        UPDATE jobs j SET state = 'running', attempt = j.attempt + 1, fence = j.fence + 1,
            started_at = v_now,
            lease_expires_at = v_now + p_lease_us * interval '1 microsecond', worker = p_worker
        WHERE j.id = ANY(v_ids)
        RETURNING j
    )
    SELECT array_agg(c.j) INTO v_jobs FROM claimed c;

    RETURN QUERY
    SELECT c.id, c.kind, c.queue, c.payload, c.priority, c.state, c.attempt, c.max_attempts,
        c.run_at, c.created_at, c.started_at, c.finished_at, c.timeout_us, c.unique_key,
        c.tags, c.result, c.errors, c.lease_expires_at, c.worker, c.batch_id, c.fence,
        false, NULL::timestamptz
    FROM unnest(v_jobs) AS c;
    IF v_held IS NOT NULL THEN
        o_held := true;
        o_retry_at := v_retry_at;
        RETURN NEXT;
    END IF;
END
$$;
