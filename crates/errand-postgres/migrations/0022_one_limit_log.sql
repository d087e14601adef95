-- One start-log writer for both lock modes (migration 0020 had two
-- functions that differed only in the slot written and in how old rows
-- were deleted).
--
-- The slot becomes a parameter: 0 for a claim holding its kinds' locks
-- exclusively, the backend's pid for one holding them shared (0020).
-- Old rows are always deleted the way shared holders must, skipping rows
-- another transaction has locked: for an exclusive holder that skips
-- nothing, because only claims holding a kind's lock write or delete its
-- rows and an exclusive lock is granted only when no other holder's
-- transaction is in flight. Forgetting a row later is harmless anyway:
-- the window's sum reads only rows inside the window.
DROP FUNCTION errand_limit_log(timestamptz, text[], bigint[], bigint[], text[]);
DROP FUNCTION errand_limit_log_shared(timestamptz, text[], bigint[], bigint[], text[]);

-- Logs the starts of this claim (p_started: one kind per job started) of
-- the rated kinds among p_limited into slot p_slot, and forgets each such
-- kind's rows errand_limit_log_margin() after they left its window.
CREATE FUNCTION errand_limit_log(
    p_now timestamptz,
    p_limited text[],
    p_rate_per_us bigint[],
    p_rate_slice_us bigint[],
    p_started text[],
    p_slot integer
) RETURNS void
LANGUAGE plpgsql
VOLATILE
AS $$
BEGIN
    DELETE FROM kind_starts s
    WHERE s.ctid = ANY(ARRAY(
        SELECT o.ctid FROM kind_starts o
        JOIN unnest(p_limited, p_rate_per_us) AS u(kind, per_us)
            ON u.per_us IS NOT NULL AND o.kind = u.kind
        WHERE o.bucket <= p_now - u.per_us * interval '1 microsecond' - errand_limit_log_margin()
        FOR UPDATE OF o SKIP LOCKED));
    INSERT INTO kind_starts AS s (kind, bucket, slot, started_at, starts)
    SELECT k.kind,
        date_bin(u.slice_us * interval '1 microsecond', p_now,
            timestamptz '1970-01-01 00:00:00+00') + u.slice_us * interval '1 microsecond',
        p_slot, p_now, count(*)
    FROM unnest(p_started) AS k(kind)
    JOIN unnest(p_limited, p_rate_slice_us) AS u(kind, slice_us)
        ON u.kind = k.kind AND u.slice_us IS NOT NULL
    GROUP BY k.kind, u.slice_us
    ON CONFLICT (kind, bucket, slot) DO UPDATE
    SET starts = s.starts + excluded.starts,
        started_at = GREATEST(s.started_at, excluded.started_at);
END
$$;

-- errand_claim_limited exactly as in 0020 (its ways in are explained there),
-- calling errand_limit_log with its slot: the backend's pid under the shared
-- lock, 0 under the exclusive one.
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
        -- errand_claim's statement, inline: its rows go out once instead of
        -- through errand_claim's result first.
        RETURN QUERY
        UPDATE jobs c SET state = 'running', attempt = c.attempt + 1, fence = c.fence + 1,
            started_at = v_now, lease_expires_at = v_lease_until, worker = p_worker
        WHERE c.id = ANY(ARRAY(
            SELECT j.id FROM jobs j
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
