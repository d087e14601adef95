-- The fencing token of a job's latest claim, apart from its attempt count
-- (docs/decisions/0015): `fence` grows on every claim and never goes back;
-- `attempt` counts the attempts used, and a refund (snooze, deadly,
-- hand-back) lowers it instead of raising `max_attempts`. Until now the
-- attempt was the fence, so every job, running ones included, starts with
-- fence = attempt: a lease taken before the upgrade stays valid. A
-- `max_attempts` that earlier refunds raised cannot be told from one a
-- caller set, so it is kept as it is.
ALTER TABLE jobs ADD COLUMN fence bigint NOT NULL DEFAULT 0;
UPDATE jobs SET fence = attempt WHERE attempt <> 0;

-- Both claims raise the fence with the attempt. errand_claim (as in
-- 0006) keeps its signature: it returns whole rows, now with the fence; the limited claim
-- returns the fence as its job's last column, so its result type changes
-- and it is made again. The 9-argument limited claim of 0008, kept for
-- nodes of older builds, goes: such a node fences on the attempt and
-- would accept a late finish, so it must fail rather than claim.
CREATE OR REPLACE FUNCTION errand_claim(
    p_now timestamptz,
    p_lease_until timestamptz,
    p_worker text,
    p_queue text,
    p_kinds text[],
    p_limit bigint
) RETURNS SETOF jobs
LANGUAGE sql
VOLATILE
SET enable_bitmapscan = off
SET enable_sort = off
AS $$
    UPDATE jobs SET state = 'running', attempt = attempt + 1, fence = fence + 1,
        started_at = p_now, lease_expires_at = p_lease_until, worker = p_worker
    WHERE id = ANY(ARRAY(
        SELECT id FROM jobs
        WHERE state IN ('scheduled', 'available', 'retryable')
          AND queue = p_queue AND run_at <= p_now
          AND (cardinality(p_kinds) = 0 OR kind = ANY(p_kinds))
          AND NOT EXISTS (SELECT 1 FROM queues q WHERE q.name = p_queue AND q.paused)
        ORDER BY priority, run_at, id
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED))
    RETURNING *
$$;

DROP FUNCTION errand_claim_limited(bigint, text, text, text[], bigint, text[], bigint[],
    bigint[], bigint[]);
DROP FUNCTION errand_claim_limited(bigint, text, text, text[], bigint, text[], bigint[],
    bigint[], bigint[], boolean);

-- The slice of a rate window that the start log buckets by is errand's
-- rule (errand_core's Rate::slice), passed in as p_rate_slice_us, one per
-- limited kind like p_rate_per_us, instead of computed here a second time.
-- Otherwise as 0009's.
DROP FUNCTION errand_limit_log(timestamptz, text[], bigint[], text[]);
DROP FUNCTION errand_limit_bucket(timestamptz, bigint);

CREATE FUNCTION errand_limit_log(
    p_now timestamptz,
    p_limited text[],
    p_rate_per_us bigint[],
    p_rate_slice_us bigint[],
    p_started text[]
) RETURNS void
LANGUAGE plpgsql
VOLATILE
AS $$
BEGIN
    DELETE FROM kind_starts s
    USING unnest(p_limited, p_rate_per_us) AS u(kind, per_us)
    WHERE u.per_us IS NOT NULL AND s.kind = u.kind
      AND s.bucket <= p_now - u.per_us * interval '1 microsecond' - errand_limit_log_margin();
    INSERT INTO kind_starts AS s (kind, bucket, started_at, starts)
    SELECT k.kind,
        date_bin(u.slice_us * interval '1 microsecond', p_now,
            timestamptz '1970-01-01 00:00:00+00') + u.slice_us * interval '1 microsecond',
        p_now, count(*)
    FROM unnest(p_started) AS k(kind)
    JOIN unnest(p_limited, p_rate_slice_us) AS u(kind, slice_us)
        ON u.kind = k.kind AND u.slice_us IS NOT NULL
    GROUP BY k.kind, u.slice_us
    ON CONFLICT (kind, bucket) DO UPDATE
    SET starts = s.starts + excluded.starts,
        started_at = GREATEST(s.started_at, excluded.started_at);
END
$$;

-- The limited claim as in 0009, with the fence, the rate slices, and one
-- clock (docs/decisions/0014-one-clock.md): it takes its instant from the
-- caller (p_now, the errand process's clock, as the plain claim
-- errand_claim always has) instead of the database server's
-- clock_timestamp(). Lease expiry, leader leases and every other deadline
-- are read from that same clock, so a node whose clock is off by a second
-- is off by that second everywhere, never by the difference between two
-- clocks. The server clock still measures durations inside the call (how
-- long it waited for a kind's lock): the locked path moves p_now on by
-- that wait, and the optimistic path gives up, as before, when the wait
-- outlasts errand_limit_log_margin(), which also bounds how far apart two
-- nodes' instants may be before one could forget starts the other should
-- count (nodes need clocks synchronised well within it: NTP).
CREATE FUNCTION errand_claim_limited(
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
SET enable_bitmapscan = off
SET enable_sort = off
SET jit = off
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
    -- Whether any limited kind has a rate (else there is no log to keep).
    v_rated boolean := EXISTS (SELECT 1 FROM unnest(p_rate_per_us) AS r WHERE r IS NOT NULL);
BEGIN
    IF NOT p_locked AND (SELECT bool_and(u.room >= p_limit) FROM errand_limit_usage(
            v_now, p_limited, p_concurrency, p_rate_count, p_rate_per_us) AS u) THEN
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
                v_started_kinds);
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
            v_started_kinds);
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
