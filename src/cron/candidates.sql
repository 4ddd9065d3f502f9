-- Every selected calendar of a supported provider ($1), or only those in the groups of the rows $2,
-- with what renewal needs to decide. Ordered so each group's rows are adjacent, owner first (the
-- same owner rule as the read path).
SELECT sc.id, sc."userId", sc.integration, sc."externalId", sc."credentialId", sc."channelId",
       sc."channelExpiration", sc."syncSubscribedErrorCount" AS sub_errors, sc."syncSubscribedErrorAt" AS sub_error_at,
       sc."syncedAt", sc."syncErrorAt", sc."syncSubscribedAt",
       COALESCE(sc."syncErrorCount", 0) AS sync_errors, st."windowEnd" AS window_end,
       CASE WHEN cr.id IS NOT NULL THEN cr.invalid IS NOT TRUE ELSE dc.enabled IS TRUE END AS credential_ok
FROM "SelectedCalendar" sc
LEFT JOIN "Credential" cr ON cr.id = sc."credentialId"
LEFT JOIN "DelegationCredential" dc ON dc.id = sc."delegationCredentialId"
LEFT JOIN "CalendarSyncState" st ON st."selectedCalendarId" = sc.id
WHERE sc.integration = ANY($1)
  AND ($2::text[] IS NULL OR (sc."userId", sc.integration, sc."externalId") IN (
        SELECT "userId", integration, "externalId" FROM "SelectedCalendar" WHERE id = ANY($2)))
ORDER BY sc."userId", sc.integration, sc."externalId", (st."selectedCalendarId" IS NULL),
         (sc."eventTypeId" IS NOT NULL), sc.id
