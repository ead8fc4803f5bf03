-- People a moderator or an admin removed from a room: every link of theirs for that room is
-- refused (joins, resumes, the case API) until a moderator lets them back ("readmit").
CREATE TABLE removals (
    room       TEXT    NOT NULL,
    identity   TEXT    NOT NULL,
    reason     TEXT    NOT NULL,
    removed_at INTEGER NOT NULL,
    PRIMARY KEY (room, identity)
);
