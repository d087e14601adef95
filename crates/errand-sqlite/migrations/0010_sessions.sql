-- Dashboard sessions (docs/decisions/0022): only the SHA-256 of a session
-- secret is kept. A session acts as the token whose hash it records while
-- that token exists: revoking the token (or replacing it by a new one of
-- the same name) ends its sessions. Expired rows are deleted by prune.
CREATE TABLE sessions (
    hash       TEXT    PRIMARY KEY,
    token_name TEXT    NOT NULL,
    token_hash TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_expires ON sessions (expires_at);
