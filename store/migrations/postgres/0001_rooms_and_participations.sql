-- Rooms, participation records and revoked tokens. Times are Unix milliseconds.
CREATE TABLE rooms (
    name             TEXT   PRIMARY KEY,
    created_at       BIGINT NOT NULL,
    closed_at        BIGINT,
    close_reason     TEXT,
    max_participants BIGINT,
    metadata         TEXT   NOT NULL DEFAULT ''
);

CREATE TABLE participations (
    id           BIGSERIAL PRIMARY KEY,
    room         TEXT   NOT NULL REFERENCES rooms(name),
    identity     TEXT   NOT NULL,
    display_name TEXT   NOT NULL,
    role         TEXT   NOT NULL,
    joined_at    BIGINT NOT NULL,
    left_at      BIGINT,
    leave_reason TEXT
);
CREATE INDEX participations_by_room ON participations (room, joined_at);
CREATE INDEX participations_open ON participations (left_at) WHERE left_at IS NULL;

CREATE TABLE revoked_tokens (
    jti        TEXT   PRIMARY KEY,
    room       TEXT   NOT NULL,
    identity   TEXT   NOT NULL,
    reason     TEXT   NOT NULL,
    revoked_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
