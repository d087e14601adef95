-- Queues an operator paused (or resumed): a paused queue accepts jobs but
-- the claim returns none of them, on every node at once since the check is
-- part of the claim itself. Queues never paused have no row.
CREATE TABLE queues (
    name       text        PRIMARY KEY,
    paused     boolean     NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- errand_claim of migration 0003, refusing paused queues.
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
    UPDATE jobs SET state = 'running', attempt = attempt + 1, started_at = p_now,
        lease_expires_at = p_lease_until, worker = p_worker
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
