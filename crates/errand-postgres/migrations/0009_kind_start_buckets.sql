-- The rate start log, bucketed by fixed time slices of the kind's window
-- (a hundredth of it, at least a microsecond): one row per (kind, slice)
-- with the number of starts in the slice and the latest of them, so a claim
-- sums at most about a hundred rows per window, however many claims the
-- window saw (one row per claim cost O(claims per window) per claim).
--
-- `bucket` is the slice's end (exclusive): every start
-- of the row is before it, whatever the slice length was when the row was
-- written, so the rows that may count are a primary-key range (bucket >
-- the window's start) and a row may be forgotten once its bucket is that
-- far in the past. A row counts whole while its latest start is inside the
-- window: its earlier starts may have left it, which errs on the safe side
-- (the rate can never be exceeded; it may be under-used by at most one
-- slice at the window's edge), and the window frees its starts when it
-- passes that latest start, which is the `oldest` errand_limit_usage gives
-- for retry_at (as late as the true one, at most one slice later).
--
-- Everything migration 0008 says about the claim still holds with buckets:
-- rows are written only with the kind's lock held, a claim counts every
-- row whose latest start is after its instant minus the window (so a start
-- logged at an earlier instant into a later-started slice is still
-- counted), and a row is forgotten only errand_limit_log_margin() after its
-- bucket's end left the window. Only errand_limit_usage and
-- errand_limit_log change (same signatures), so errand_claim_limited calls
-- the new ones as it is.

-- The end (exclusive) of the slice of a window of p_per_us microseconds
-- that p_at falls in; slices start at the unix epoch. date_bin is
-- immutable (extract(epoch) is only stable, which would keep this function
-- from being inlined into the claim's statements).
CREATE FUNCTION errand_limit_bucket(p_at timestamptz, p_per_us bigint) RETURNS timestamptz
LANGUAGE sql
IMMUTABLE
AS $$
    SELECT date_bin(GREATEST(p_per_us / 100, 1) * interval '1 microsecond', p_at,
        timestamptz '1970-01-01 00:00:00+00')
        + GREATEST(p_per_us / 100, 1) * interval '1 microsecond'
$$;

-- Each row is updated by every claim of its slice: with room left on its
-- page the update is HOT (no column it changes is indexed) and writes no
-- index entry.
CREATE TABLE kind_start_buckets (
    kind       text        NOT NULL,
    bucket     timestamptz NOT NULL,
    started_at timestamptz NOT NULL,
    starts     bigint      NOT NULL,
    PRIMARY KEY (kind, bucket)
) WITH (fillfactor = 50);

-- Rows logged before this migration each become their own bucket.
INSERT INTO kind_start_buckets (kind, bucket, started_at, starts)
SELECT kind, started_at + interval '1 microsecond', started_at, sum(jobs) FROM kind_starts
GROUP BY kind, started_at;

DROP TABLE kind_starts;
ALTER TABLE kind_start_buckets RENAME TO kind_starts;
ALTER INDEX kind_start_buckets_pkey RENAME TO kind_starts_pkey;

CREATE OR REPLACE FUNCTION errand_limit_usage(
    p_now timestamptz,
    p_limited text[],
    p_concurrency bigint[],
    p_rate_count bigint[],
    p_rate_per_us bigint[]
) RETURNS TABLE (
    kind text, per interval, by_concurrency bigint, by_rate bigint, room bigint,
    oldest timestamptz
)
LANGUAGE sql
STABLE
AS $$
    SELECT u.kind, u.per_us * interval '1 microsecond', c.n, r.n,
        GREATEST(LEAST(c.n, r.n), 0), r.oldest
    FROM unnest(p_limited, p_concurrency, p_rate_count, p_rate_per_us)
        AS u(kind, concurrency, rate_count, per_us)
    CROSS JOIN LATERAL (
        SELECT CASE WHEN u.concurrency IS NULL THEN 9223372036854775807
            ELSE u.concurrency - (
                SELECT count(*) FROM jobs j WHERE j.kind = u.kind AND j.state = 'running')
            END AS n) AS c
    CROSS JOIN LATERAL (
        SELECT CASE WHEN u.rate_count IS NULL THEN 9223372036854775807
            ELSE u.rate_count - COALESCE(sum(s.starts), 0) END AS n,
            min(s.started_at) AS oldest
        FROM kind_starts s
        WHERE u.rate_count IS NOT NULL AND s.kind = u.kind
          AND s.bucket > p_now - u.per_us * interval '1 microsecond'
          AND s.started_at > p_now - u.per_us * interval '1 microsecond'
    ) AS r
$$;

-- plpgsql rather than sql: a multi-statement sql function is planned
-- again on every call, plpgsql keeps its plans for the session (measured:
-- 0.39 ms per call as sql, most of it planning).
CREATE OR REPLACE FUNCTION errand_limit_log(
    p_now timestamptz,
    p_limited text[],
    p_rate_per_us bigint[],
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
    SELECT k.kind, errand_limit_bucket(p_now, u.per_us), p_now, count(*)
    FROM unnest(p_started) AS k(kind)
    JOIN unnest(p_limited, p_rate_per_us) AS u(kind, per_us)
        ON u.kind = k.kind AND u.per_us IS NOT NULL
    GROUP BY k.kind, u.per_us
    ON CONFLICT (kind, bucket) DO UPDATE
    SET starts = s.starts + excluded.starts,
        started_at = GREATEST(s.started_at, excluded.started_at);
END
$$;

-- The limited claim again, with one change to its optimistic path (far
-- from every limit, start the jobs first, then lock and check; see 0008 for
-- the reasoning, which holds unchanged). That path kept its jobs in an
-- array of rows and ran in a subtransaction so that a failed check could
-- roll back and claim the locked way: measured at 0.3 ms of 2.9 per claim
-- of 140 jobs for the array alone. Now it returns the jobs as
-- errand_claim gives them and, if the check fails, raises EL001 instead:
-- the whole statement rolls back (jobs untouched, locks freed) and the
-- caller claims again with p_locked, which goes straight to the locked
-- path. That costs a round trip, only when another claim took the room
-- while this one waited for the lock. The 9-argument errand_claim_limited
-- of 0008 stays for nodes of the previous build until they are upgraded.
CREATE FUNCTION errand_claim_limited(
    p_lease_us bigint,
    p_worker text,
    p_queue text,
    p_kinds text[],
    p_limit bigint,
    p_limited text[],
    p_concurrency bigint[],
    p_rate_count bigint[],
    p_rate_per_us bigint[],
    p_locked boolean
) RETURNS TABLE (
    -- The job's columns, in the order of the jobs table (all NULL on the
    -- held row); named o_* so that no name in the body means two things.
    o_id bigint, o_kind text, o_queue text, o_payload jsonb, o_priority smallint,
    o_state text, o_attempt integer, o_max_attempts integer, o_run_at timestamptz,
    o_created_at timestamptz, o_started_at timestamptz, o_finished_at timestamptz,
    o_timeout_us bigint, o_unique_key text, o_tags text[], o_result jsonb, o_errors jsonb,
    o_lease_expires_at timestamptz, o_worker text, o_batch_id bigint,
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
    v_now timestamptz := clock_timestamp();
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
            c.batch_id, false, NULL::timestamptz
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
           OR clock_timestamp() - v_now > errand_limit_log_margin()
        THEN
            RAISE EXCEPTION USING ERRCODE = 'EL001',
                MESSAGE = 'errand: a limit ran out while the claim waited for its lock',
                HINT = 'claim again with p_locked';
        END IF;
        IF v_rated AND v_started_kinds IS NOT NULL THEN
            PERFORM errand_limit_log(v_now, p_limited, p_rate_per_us, v_started_kinds);
        END IF;
        RETURN;
    END IF;

    PERFORM errand_limit_lock(p_limited);
    v_now := clock_timestamp();

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
        PERFORM errand_limit_log(v_now, p_limited, p_rate_per_us, v_started_kinds);
    END IF;

    WITH claimed AS (
        UPDATE jobs j SET state = 'running', attempt = j.attempt + 1, started_at = v_now,
            lease_expires_at = v_now + p_lease_us * interval '1 microsecond', worker = p_worker
        WHERE j.id = ANY(v_ids)
        RETURNING j
    )
    SELECT array_agg(c.j) INTO v_jobs FROM claimed c;

    RETURN QUERY
    SELECT c.id, c.kind, c.queue, c.payload, c.priority, c.state, c.attempt, c.max_attempts,
        c.run_at, c.created_at, c.started_at, c.finished_at, c.timeout_us, c.unique_key,
        c.tags, c.result, c.errors, c.lease_expires_at, c.worker, c.batch_id,
        false, NULL::timestamptz
    FROM unnest(v_jobs) AS c;
    IF v_held IS NOT NULL THEN
        o_held := true;
        o_retry_at := v_retry_at;
        RETURN NEXT;
    END IF;
END
$$;
