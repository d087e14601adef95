-- API tokens (docs/decisions/0019): only the SHA-256 of a secret is kept,
-- looked up by that hash; scopes are space-separated (`enqueue:email read`).
-- A revoked token's row is deleted.
CREATE TABLE tokens (
    name         TEXT    PRIMARY KEY,
    hash         TEXT    NOT NULL UNIQUE,
    scopes       TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER
);
