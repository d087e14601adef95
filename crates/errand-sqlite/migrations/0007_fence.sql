-- The fencing token of a job's latest claim, apart from its attempt count
-- (docs/decisions/0015): `fence` grows on every claim and never goes back;
-- `attempt` counts the attempts used, and a refund (snooze, deadly,
-- hand-back) lowers it instead of raising `max_attempts`. Until now the
-- attempt was the fence, so every job, running ones included, starts with
-- fence = attempt: a lease taken before the upgrade stays valid. A
-- `max_attempts` that earlier refunds raised cannot be told from one a
-- caller set, so it is kept as it is.
ALTER TABLE jobs ADD COLUMN fence INTEGER NOT NULL DEFAULT 0;
UPDATE jobs SET fence = attempt WHERE attempt <> 0;
