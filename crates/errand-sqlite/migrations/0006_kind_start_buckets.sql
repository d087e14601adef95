-- The rate start log, bucketed by fixed time slices of the kind's window
-- (a hundredth of it): one row per (kind, slice) with the number of starts
-- in the slice and the latest of them, so a claim sums at most about a
-- hundred rows per window however many claims the window saw. `bucket` is
-- the slice's end (unix microseconds, exclusive): every start of the row is
-- before it whatever the slice length was when it was written, so a claim
-- finds the rows that may count with a primary-key range (bucket > window
-- start) and counts those whose latest start is inside the window. A row
-- counts all its starts while its latest is inside: conservative, the rate
-- can never be exceeded, at worst one slice is under-used at the window's
-- edge. Rows logged before this migration each become their own bucket.
CREATE TABLE kind_start_buckets (
    kind       TEXT    NOT NULL,
    bucket     INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    starts     INTEGER NOT NULL,
    PRIMARY KEY (kind, bucket)
) WITHOUT ROWID;

INSERT INTO kind_start_buckets (kind, bucket, started_at, starts)
SELECT kind, started_at + 1, started_at, SUM(starts) FROM kind_starts
GROUP BY kind, started_at;

DROP TABLE kind_starts;
ALTER TABLE kind_start_buckets RENAME TO kind_starts;
