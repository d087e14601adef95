-- Job counts per (queue, kind, state), kept exact in the same transaction
-- as every insert, state change and delete of a job (src/counts.rs), so the
-- overview, /v1/stats, /v1/queues and /metrics read a few dozen rows instead
-- of counting the jobs table (0.8 s with a million jobs). A later migration
-- that moves jobs between states must adjust these counts itself.
-- docs/decisions/0028-stored-job-counts.md.
CREATE TABLE job_counts (
    queue TEXT    NOT NULL,
    kind  TEXT    NOT NULL,
    state TEXT    NOT NULL,
    n     INTEGER NOT NULL,
    PRIMARY KEY (queue, kind, state)
) WITHOUT ROWID;

INSERT INTO job_counts (queue, kind, state, n)
    SELECT queue, kind, state, COUNT(*) FROM jobs GROUP BY queue, kind, state;
