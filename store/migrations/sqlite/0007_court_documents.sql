-- The court's documents (a ruling's 民事裁定书) come back with its update; the bytes are kept
-- beside the update's inbox row (written in the same transaction), the case's record keeps
-- only their SHA-256.
ALTER TABLE confirmation_inbox ADD COLUMN document BLOB;
