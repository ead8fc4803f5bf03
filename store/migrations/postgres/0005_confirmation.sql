-- Judicial confirmation: the outbox of signed envelopes for the court bridge, and the inbox of
-- court updates taken. An outbox row is written in the same transaction as the case event that
-- made it (the last party's application, a withdrawal); an inbox row in the same transaction as
-- the update's effect, so a redelivered update (same message id) changes nothing.
-- Times are Unix milliseconds.
CREATE TABLE confirmation_outbox (
    message_id  TEXT PRIMARY KEY,
    case_id     TEXT NOT NULL REFERENCES cases(id),
    seq         BIGINT NOT NULL,
    payload     TEXT NOT NULL,
    signature   TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    -- pending (until the bridge acknowledges), acked, or dead (failed too often; see last_error).
    state       TEXT NOT NULL DEFAULT 'pending',
    attempts    BIGINT NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until BIGINT,
    last_error  TEXT,
    acked_at    BIGINT,
    UNIQUE (case_id, seq)
);
CREATE INDEX confirmation_outbox_pending ON confirmation_outbox (created_at, seq) WHERE state = 'pending';

CREATE TABLE confirmation_inbox (
    message_id  TEXT PRIMARY KEY,
    case_id     TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    -- applied, or refused (with the reason): both are final and acknowledged to the bridge.
    outcome     TEXT NOT NULL,
    reason      TEXT
);
