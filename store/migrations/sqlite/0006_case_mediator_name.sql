-- Lists show people by name, never by account id: the mediator's name beside the id, filled
-- for existing cases from their opening event (the mediator is its first member).
ALTER TABLE cases ADD COLUMN mediator_name TEXT NOT NULL DEFAULT '';
UPDATE cases SET mediator_name = COALESCE(
    (SELECT json_extract(body, '$.members[0].name') FROM case_events
     WHERE case_events.case_id = cases.id AND case_events.seq = 1), '');
