-- Job counts per (queue, kind, state), so the overview, /v1/stats,
-- /v1/queues and /metrics read a few dozen rows instead of counting the
-- jobs table (0.14 s with a million jobs). docs/decisions/0028.
--
-- Statement triggers append each statement's net changes to
-- job_count_deltas, in the statement's own transaction: exact, and counted
-- on every path that moves a job (the claim functions included) without it
-- knowing. Appending instead of updating job_counts keeps concurrent
-- transactions from queueing on one hot counter row; a task on each node
-- folds the deltas into job_counts every second (src/counts.rs), and
-- readers add up both tables.
CREATE TABLE job_counts (
    queue text   NOT NULL,
    kind  text   NOT NULL,
    state text   NOT NULL,
    n     bigint NOT NULL,
    PRIMARY KEY (queue, kind, state)
);

-- Emptied every second, so vacuumed often whatever its size.
CREATE TABLE job_count_deltas (
    queue text   NOT NULL,
    kind  text   NOT NULL,
    state text   NOT NULL,
    n     bigint NOT NULL
) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000);

INSERT INTO job_counts (queue, kind, state, n)
    SELECT queue, kind, state, count(*) FROM jobs GROUP BY queue, kind, state;

CREATE FUNCTION errand_count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_count_deltas (queue, kind, state, n)
        SELECT queue, kind, state, count(*) FROM inserted GROUP BY queue, kind, state;
    RETURN NULL;
END $$;

-- Every UPDATE fires it (a trigger with transition tables cannot name
-- columns); a heartbeat's rows cancel out and append nothing.
CREATE FUNCTION errand_count_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_count_deltas (queue, kind, state, n)
        SELECT queue, kind, state, sum(n) FROM (
            SELECT queue, kind, state, 1 AS n FROM after_rows
            UNION ALL
            SELECT queue, kind, state, -1 AS n FROM before_rows
        ) moved
        GROUP BY queue, kind, state HAVING sum(n) <> 0;
    RETURN NULL;
END $$;

CREATE FUNCTION errand_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_count_deltas (queue, kind, state, n)
        SELECT queue, kind, state, -count(*) FROM deleted GROUP BY queue, kind, state;
    RETURN NULL;
END $$;

CREATE TRIGGER job_counts_inserted AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION errand_count_inserted();
CREATE TRIGGER job_counts_updated AFTER UPDATE ON jobs
    REFERENCING OLD TABLE AS before_rows NEW TABLE AS after_rows
    FOR EACH STATEMENT EXECUTE FUNCTION errand_count_updated();
CREATE TRIGGER job_counts_deleted AFTER DELETE ON jobs
    REFERENCING OLD TABLE AS deleted
    FOR EACH STATEMENT EXECUTE FUNCTION errand_count_deleted();
