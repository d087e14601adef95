-- Queues an operator paused (or resumed): a paused queue accepts jobs but
-- the claim returns none of them. Queues never paused have no row.
CREATE TABLE queues (
    name       TEXT    PRIMARY KEY,
    paused     INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;
