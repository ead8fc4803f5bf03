-- A room's recording policy (NULL: the server's recording.allowed), and the audit log of
-- who read or deleted what (recordings first). Times are Unix milliseconds. The log is a hash
-- chain: each row's `hash` covers its fields and `prev_hash`, the hash of the row before it.
ALTER TABLE rooms ADD COLUMN recording TEXT;

CREATE TABLE audit_log (
    id     BIGSERIAL PRIMARY KEY,
    at     BIGINT  NOT NULL,
    actor  TEXT    NOT NULL,
    role   TEXT    NOT NULL,
    action TEXT    NOT NULL,
    target TEXT    NOT NULL,
    detail TEXT    NOT NULL DEFAULT '',
    prev_hash TEXT NOT NULL,
    hash   TEXT    NOT NULL
);
CREATE INDEX audit_log_by_target ON audit_log (target, at);
