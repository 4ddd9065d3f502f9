SELECT DISTINCT ON (s."externalId") s.id, $1, s."externalId", s."externalEtag", s."iCalUID", s."iCalSequence",
       s.summary, s.description, s.location, s.start, s."end", s."isAllDay", s."timeZone",
       s.status::"CalendarCacheEventStatus", s."recurringEventId", s."originalStartTime", $2, $2,
       s."externalCreatedAt", s."externalUpdatedAt"
FROM "CalendarSyncStage" s
WHERE s."runId" = $3
-- Ids are time-ordered (UUIDv7): the row staged last for an external id wins.
ORDER BY s."externalId", s.id DESC
