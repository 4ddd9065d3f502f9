-- The calendars of a read, by SelectedCalendar id ($1), in the requested order ("ord").
WITH req AS (
  SELECT sc.id, sc."userId", sc.integration, sc."externalId", sc."credentialId", sc."delegationCredentialId", r.ord
  FROM unnest($1::text[]) WITH ORDINALITY AS r(id, ord)
  JOIN "SelectedCalendar" sc ON sc.id = r.id
)
