-- A claim involving kinds with global limits, as one function: one round
-- trip, one statement, so the per-kind advisory locks are held from the
-- moment they are granted until the commit right after, never across
-- client round trips.

-- The start log keeps one row per claim with the number of jobs it
-- started, so the window costs O(claims), not O(jobs). Rows logged before
-- this migration each stand for one start.
ALTER TABLE kind_starts ADD COLUMN jobs integer NOT NULL DEFAULT 1;

-- The limited kinds come as parallel arrays: p_limited (kind names),
-- p_concurrency (NULL: no concurrency limit), p_rate_count and
-- p_rate_per_us (NULL: no rate). One row per claimed job (held false) and,
-- when a limited kind had more due jobs than its limit let this claim
-- take, one last row with a NULL job, held true and retry_at: when the
-- rate window frees the next start if a rate was what held a kind back
-- (the earliest over the held kinds), else NULL.
--
-- Under READ COMMITTED each statement of a VOLATILE function takes a new
-- snapshot, so every statement after the locks sees the previous holder's
-- commit. The clock is read after the locks too: a claim that waited must
-- not judge the rate window by an instant older than the one that held
-- them.
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
) RETURNS TABLE (job jobs, held boolean, retry_at timestamptz)
LANGUAGE plpgsql
VOLATILE
AS $$
DECLARE
    v_key integer;
    v_now timestamptz;
    v_ids bigint[];
    v_held text[];
    v_retry_at timestamptz;
    v_room bigint[];
    v_by_rate bigint[];
    v_by_concurrency bigint[];
    v_oldest timestamptz[];
BEGIN
    -- In key order, so two claims never wait on each other in a cycle.
    FOR v_key IN
        SELECT DISTINCT hashtext('errand.limit.' || k) AS key FROM unnest(p_limited) AS k
        ORDER BY key
    LOOP
        PERFORM pg_advisory_xact_lock(v_key);
    END LOOP;
    v_now := clock_timestamp();

    DELETE FROM kind_starts s
    USING unnest(p_limited, p_rate_per_us) AS u(kind, per_us)
    WHERE u.per_us IS NOT NULL AND s.kind = u.kind
      AND s.started_at <= v_now - u.per_us * interval '1 microsecond';

    -- Each limited kind's room (arrays parallel to p_limited): how many
    -- more may start by its concurrency (running jobs of every node,
    -- expired leases included, which errs on the safe side) and by its
    -- rate (starts logged within the window), and its oldest start there.
    SELECT array_agg(LEAST(c.by_concurrency, r.by_rate) ORDER BY u.i),
        array_agg(r.by_rate ORDER BY u.i),
        array_agg(c.by_concurrency ORDER BY u.i),
        array_agg(r.oldest ORDER BY u.i)
    INTO v_room, v_by_rate, v_by_concurrency, v_oldest
    FROM unnest(p_limited, p_concurrency, p_rate_count, p_rate_per_us)
        WITH ORDINALITY AS u(kind, concurrency, rate_count, per_us, i)
    CROSS JOIN LATERAL (
        SELECT CASE WHEN u.concurrency IS NULL THEN 9223372036854775807
            ELSE GREATEST(u.concurrency - (
                SELECT count(*) FROM jobs j WHERE j.kind = u.kind AND j.state = 'running'), 0)
            END AS by_concurrency) AS c
    CROSS JOIN LATERAL (
        SELECT CASE WHEN u.rate_count IS NULL THEN 9223372036854775807
            ELSE GREATEST(u.rate_count - COALESCE(sum(s.jobs), 0), 0) END AS by_rate,
            min(s.started_at) AS oldest
        FROM kind_starts s
        WHERE u.rate_count IS NOT NULL AND s.kind = u.kind
          AND s.started_at > v_now - u.per_us * interval '1 microsecond'
    ) AS r;

    -- Candidates locked FOR UPDATE SKIP LOCKED: per limited kind at most
    -- its room plus one (the extra row tells whether jobs were held back),
    -- and for the other kinds up to the claim's limit. Walked in claim
    -- order, a candidate is taken while the claim has taken fewer than
    -- p_limit and its kind has room left; a limited kind is held when one
    -- of its candidates is passed over before the claim is full.
    WITH usage AS (
        SELECT * FROM unnest(p_limited, v_room) AS u(kind, room)
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
        array_agg(DISTINCT w.kind) FILTER (WHERE NOT w.fits AND w.taken < p_limit)
    INTO v_ids, v_held
    FROM walked w;

    -- A rate-limited kind that started jobs logs one row for them all.
    INSERT INTO kind_starts (kind, started_at, jobs)
    SELECT j.kind, v_now, count(*) FROM jobs j
    JOIN unnest(p_limited, p_rate_per_us) AS u(kind, per_us)
        ON u.kind = j.kind AND u.per_us IS NOT NULL
    WHERE j.id = ANY(v_ids)
    GROUP BY j.kind;

    IF v_held IS NOT NULL THEN
        -- The rate frees the next start at the oldest start in the window
        -- plus the window (now plus the window when this claim's start is
        -- the only one), if the rate rather than the concurrency bound it.
        SELECT min(COALESCE(u.oldest, v_now) + u.per_us * interval '1 microsecond')
        INTO v_retry_at
        FROM unnest(p_limited, p_rate_per_us, v_by_rate, v_by_concurrency, v_oldest)
            AS u(kind, per_us, by_rate, by_concurrency, oldest)
        WHERE u.kind = ANY(v_held) AND u.per_us IS NOT NULL
          AND u.by_rate <= u.by_concurrency;
    END IF;

    RETURN QUERY
    WITH claimed AS (
        UPDATE jobs j SET state = 'running', attempt = j.attempt + 1, started_at = v_now,
            lease_expires_at = v_now + p_lease_us * interval '1 microsecond', worker = p_worker
        WHERE j.id = ANY(v_ids)
        RETURNING j
    )
    SELECT c.j, false, NULL::timestamptz FROM claimed c
    UNION ALL
    SELECT NULL::jobs, true, v_retry_at WHERE v_held IS NOT NULL;
END
$$;
