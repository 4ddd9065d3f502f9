-- The calendars of a read, by SelectedCalendar id ($1), in the requested order.
WITH req AS (
  SELECT sc.id, sc."userId", sc.integration, sc."externalId", sc."credentialId"
  FROM unnest($1::text[]) WITH ORDINALITY AS r(id, ord)
  JOIN "SelectedCalendar" sc ON sc.id = r.id
)
