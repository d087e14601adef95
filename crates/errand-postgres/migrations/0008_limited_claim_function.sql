-- A claim involving kinds with global limits, as one function: one round
-- trip, one statement, so the per-kind advisory locks are held from the
-- moment they are granted until the commit right after, never across
-- client round trips.

-- The start log keeps one row per claim with the number of jobs it
-- started, so the window costs O(claims), not O(jobs). Rows logged before
-- this migration each stand for one start.
ALTER TABLE kind_starts ADD COLUMN jobs integer NOT NULL DEFAULT 1;

-- How much of its limits each limited kind has left at p_now, as the
-- calling statement's snapshot sees it: by_concurrency (its concurrency
-- minus its running jobs, every node, expired leases included, which errs
-- on the safe side), by_rate (its rate count minus the starts logged
-- within the window), each the largest bigint when the kind has no such
-- limit and negative when over it; room (the tighter of the two, at least
-- 0); the oldest start logged within the window. The limited
-- kinds come as parallel arrays: p_limited (kind names), p_concurrency
-- (NULL: no concurrency limit), p_rate_count and p_rate_per_us (NULL: no
-- rate).
CREATE FUNCTION errand_limit_usage(
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
            ELSE u.rate_count - COALESCE(sum(s.jobs), 0) END AS n,
            min(s.started_at) AS oldest
        FROM kind_starts s
        WHERE u.rate_count IS NOT NULL AND s.kind = u.kind
          AND s.started_at > p_now - u.per_us * interval '1 microsecond'
    ) AS r
$$;

-- Takes the advisory lock of each limited kind, in key order so two
-- claims never wait on each other in a cycle.
CREATE FUNCTION errand_limit_lock(p_limited text[]) RETURNS void
LANGUAGE plpgsql
VOLATILE
AS $$
DECLARE
    v_key integer;
BEGIN
    FOR v_key IN
        SELECT DISTINCT hashtext('errand.limit.' || k) AS key FROM unnest(p_limited) AS k
        ORDER BY key
    LOOP
        PERFORM pg_advisory_xact_lock(v_key);
    END LOOP;
END
$$;

-- How long after leaving the window a logged start is forgotten (see
-- errand_claim_limited on why it is kept a while).
CREATE FUNCTION errand_limit_log_margin() RETURNS interval
LANGUAGE sql
IMMUTABLE
AS $$ SELECT interval '10 seconds' $$;

-- Logs the starts at p_now of rate-limited kinds, one row per kind with
-- its number of starts (p_started: the kind of each job started), and
-- forgets that kind's starts that left its window more than
-- errand_limit_log_margin() ago. Called with the kinds' locks held.
CREATE FUNCTION errand_limit_log(
    p_now timestamptz,
    p_limited text[],
    p_rate_per_us bigint[],
    p_started text[]
) RETURNS void
LANGUAGE sql
VOLATILE
AS $$
    DELETE FROM kind_starts s
    USING unnest(p_limited, p_rate_per_us) AS u(kind, per_us)
    WHERE u.per_us IS NOT NULL AND s.kind = u.kind
      AND s.started_at <= p_now - u.per_us * interval '1 microsecond' - errand_limit_log_margin();
    INSERT INTO kind_starts (kind, started_at, jobs)
    SELECT k.kind, p_now, count(*) FROM unnest(p_started) AS k(kind)
    JOIN unnest(p_limited, p_rate_per_us) AS u(kind, per_us)
        ON u.kind = k.kind AND u.per_us IS NOT NULL
    GROUP BY k.kind;
$$;

-- The claim itself, with the limited kinds as for errand_limit_usage. One
-- row per claimed job (held false) and, when a limited kind had more due
-- jobs than its limit let this claim take, one last row with a NULL job,
-- held true and retry_at: when the rate window frees the next start if a
-- rate was what held a kind back (the earliest over the held kinds), else
-- NULL.
--
-- Claims of a limited kind are serialised by a transaction-scoped advisory
-- lock per kind (hashtext('errand.limit.' || kind), taken in key order so
-- two claims never wait on each other in a cycle): the next holder's
-- statements run in new snapshots (READ COMMITTED, VOLATILE function), so
-- they see the previous holder's commit, and two nodes never both see room
-- for the last slot. Held until the commit, the lock is the bottleneck of
-- a busy limited kind, so the claim does as little as it can while holding
-- it:
--
-- * Far from its limits (every limited kind has room for the whole claim,
--   as an unlocked read sees it), the claim first takes and starts its
--   jobs with errand_claim, concurrently with other claims, and only then
--   takes the locks and checks the limits: the usage it reads then counts
--   its own started jobs and every earlier holder's. Within the limits, it
--   logs its starts and commits; over them (another claim got there
--   first), it rolls its work back (a subtransaction, which also frees the
--   locks) and claims as below.
-- * Otherwise it takes the locks first, reads the clock and the usage, and
--   takes at most each kind's room.
--
-- Why the rate holds though a claim of the first kind logs its starts at
-- an instant read before the lock, possibly older than the previous
-- holder's: a claim counts every logged start after its instant minus the
-- window, later ones included. Of all claims with starts in a given window,
-- the last to hold the lock has its instant in the window, so it counted
-- every start of the window (all committed before it) and its own: at most
-- the rate. That needs no start it counts to have been forgotten by an
-- earlier holder with a later instant: starts are forgotten only
-- errand_limit_log_margin() after they leave the window, and a claim of the
-- first kind that waited longer than that for the locks rolls back too.
CREATE FUNCTION errand_claim_limited(
    p_lease_us bigint,
    p_worker text,
    p_queue text,
    p_kinds text[],
    p_limit bigint,
    p_limited text[],
    p_concurrency bigint[],
    p_rate_count bigint[],
    p_rate_per_us bigint[]
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
    v_jobs jobs[];
    v_ids bigint[];
    v_started_kinds text[];
    v_held text[];
    v_retry_at timestamptz;
    v_started boolean := false;
    -- Whether any limited kind has a rate (else there is no log to keep).
    v_rated boolean := EXISTS (SELECT 1 FROM unnest(p_rate_per_us) AS r WHERE r IS NOT NULL);
BEGIN
    IF (SELECT bool_and(u.room >= p_limit) FROM errand_limit_usage(
            v_now, p_limited, p_concurrency, p_rate_count, p_rate_per_us) AS u) THEN
        BEGIN
            SELECT array_agg(c), array_agg(c.kind) INTO v_jobs, v_started_kinds
            FROM errand_claim(v_now, v_now + p_lease_us * interval '1 microsecond', p_worker,
                p_queue, p_kinds, p_limit) AS c;
            IF v_jobs IS NULL THEN
                -- Nothing due: nothing started, nothing held back.
                RETURN;
            END IF;
            PERFORM errand_limit_lock(p_limited);
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
                RAISE EXCEPTION USING ERRCODE = 'EL001';
            END IF;
            IF v_rated THEN
                PERFORM errand_limit_log(v_now, p_limited, p_rate_per_us, v_started_kinds);
            END IF;
            v_started := true;
        EXCEPTION WHEN SQLSTATE 'EL001' THEN
            NULL;
        END;
    END IF;

    IF NOT v_started THEN
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
    END IF;

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
