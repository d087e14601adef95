-- The rate start log, bucketed by fixed time slices of the kind's window
-- (a hundredth of it, at least a microsecond): one row per (kind, slice)
-- with the number of starts in the slice and the latest of them, so a claim
-- sums at most about a hundred rows per window, however many claims the
-- window saw (one row per claim cost O(claims per window) per claim).
--
-- `bucket` is the slice's end (unix microseconds, exclusive): every start
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

-- The instant as unix microseconds.
CREATE FUNCTION errand_epoch_us(p_at timestamptz) RETURNS bigint
LANGUAGE sql
IMMUTABLE
AS $$ SELECT (extract(epoch FROM p_at) * 1000000)::bigint $$;

-- The end (exclusive, unix microseconds) of the slice of a window of
-- p_per_us microseconds that p_at falls in.
CREATE FUNCTION errand_limit_bucket(p_at timestamptz, p_per_us bigint) RETURNS bigint
LANGUAGE sql
IMMUTABLE
AS $$
    SELECT (errand_epoch_us(p_at) / GREATEST(p_per_us / 100, 1) + 1) * GREATEST(p_per_us / 100, 1)
$$;

-- Each row is updated by every claim of its slice: with room left on its
-- page the update is HOT (no column it changes is indexed) and writes no
-- index entry.
CREATE TABLE kind_start_buckets (
    kind       text        NOT NULL,
    bucket     bigint      NOT NULL,
    started_at timestamptz NOT NULL,
    starts     bigint      NOT NULL,
    PRIMARY KEY (kind, bucket)
) WITH (fillfactor = 50);

-- Rows logged before this migration each become their own bucket.
INSERT INTO kind_start_buckets (kind, bucket, started_at, starts)
SELECT kind, errand_epoch_us(started_at) + 1, started_at, sum(jobs) FROM kind_starts
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
          AND s.bucket > errand_epoch_us(p_now) - u.per_us
          AND s.started_at > p_now - u.per_us * interval '1 microsecond'
    ) AS r
$$;

CREATE OR REPLACE FUNCTION errand_limit_log(
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
      AND s.bucket <= errand_epoch_us(
          p_now - u.per_us * interval '1 microsecond' - errand_limit_log_margin());
    INSERT INTO kind_starts AS s (kind, bucket, started_at, starts)
    SELECT k.kind, errand_limit_bucket(p_now, min(u.per_us)), p_now, count(*)
    FROM unnest(p_started) AS k(kind)
    JOIN unnest(p_limited, p_rate_per_us) AS u(kind, per_us)
        ON u.kind = k.kind AND u.per_us IS NOT NULL
    GROUP BY k.kind
    ON CONFLICT (kind, bucket) DO UPDATE
    SET starts = s.starts + excluded.starts,
        started_at = GREATEST(s.started_at, excluded.started_at);
$$;
