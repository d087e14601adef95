-- The latest progress an attempt reported (at most 4 KiB of JSON) and
-- when, with the fence of the claim that reported it: a job shows the
-- progress only while `progress_fence = fence`, so a new claim starts
-- without progress and the claim functions need not clear it
-- (docs/decisions/0025). Nullable columns without defaults: adding them
-- rewrites nothing.
ALTER TABLE jobs
    ADD COLUMN progress       jsonb,
    ADD COLUMN progress_at    timestamptz,
    ADD COLUMN progress_fence bigint;
