-- The latest progress an attempt reported (JSON text, at most 4 KiB) and
-- when (unix microseconds), with the fence of the claim that reported it:
-- a job shows the progress only while `progress_fence = fence`, so a new
-- claim starts without progress and no claim statement has to clear it
-- (docs/decisions/0025).
ALTER TABLE jobs ADD COLUMN progress TEXT;
ALTER TABLE jobs ADD COLUMN progress_at INTEGER;
ALTER TABLE jobs ADD COLUMN progress_fence INTEGER;
