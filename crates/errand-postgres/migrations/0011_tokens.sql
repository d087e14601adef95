-- API tokens (docs/decisions/0019): only the SHA-256 of a secret is kept,
-- looked up by that hash; scopes are space-separated (`enqueue:email read`).
-- A revoked token's row is deleted.
CREATE TABLE tokens (
    name         text        PRIMARY KEY,
    hash         text        NOT NULL UNIQUE,
    scopes       text        NOT NULL,
    created_at   timestamptz NOT NULL,
    last_used_at timestamptz
);
