-- A room with a lobby: participants without the moderate grant wait until a moderator admits them.
ALTER TABLE rooms ADD COLUMN lobby INTEGER NOT NULL DEFAULT 0;
