-- The mediation workflow. A case is an append-only record of events (case_events, JSON bodies);
-- `cases` holds what lists and the overdue query need, updated in the same transaction as each
-- append, whose expected `seq` makes concurrent commands on one case serialize.
-- Times are Unix milliseconds; claim amounts are fen.
CREATE TABLE cases (
    id        TEXT PRIMARY KEY,
    number    TEXT NOT NULL UNIQUE,
    mediator  TEXT NOT NULL,
    opened_at INTEGER NOT NULL,
    closed_at INTEGER,
    due_at    INTEGER NOT NULL,
    paused    INTEGER NOT NULL DEFAULT 0,
    seq       INTEGER NOT NULL
);
CREATE INDEX cases_by_mediator ON cases (mediator, opened_at);
CREATE INDEX cases_open_by_due ON cases (due_at) WHERE closed_at IS NULL;

CREATE TABLE case_events (
    case_id TEXT NOT NULL REFERENCES cases(id),
    seq     INTEGER NOT NULL,
    at      INTEGER NOT NULL,
    actor   TEXT NOT NULL,
    kind    TEXT NOT NULL,
    body    TEXT NOT NULL,
    PRIMARY KEY (case_id, seq)
);

-- Which case and session a room belongs to (tokens name rooms).
CREATE TABLE case_rooms (
    room    TEXT PRIMARY KEY REFERENCES rooms(name),
    case_id TEXT NOT NULL REFERENCES cases(id),
    session INTEGER NOT NULL
);

-- The minutes of a session: edited live, so kept as one row with a revision counter rather
-- than as events; each revision's hash is audited and confirmations name the revision.
CREATE TABLE minutes (
    case_id    TEXT NOT NULL REFERENCES cases(id),
    session    INTEGER NOT NULL,
    revision   INTEGER NOT NULL,
    text       TEXT NOT NULL,
    sha256     TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by TEXT NOT NULL,
    PRIMARY KEY (case_id, session)
);

-- Ratings, also in the case's events; here for per-mediator aggregates.
CREATE TABLE ratings (
    case_id  TEXT NOT NULL REFERENCES cases(id),
    session  INTEGER NOT NULL,
    person   TEXT NOT NULL,
    mediator TEXT NOT NULL,
    score    INTEGER NOT NULL,
    comment  TEXT NOT NULL,
    at       INTEGER NOT NULL,
    PRIMARY KEY (case_id, session, person)
);
CREATE INDEX ratings_by_mediator ON ratings (mediator);
