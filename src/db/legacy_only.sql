-- The legacy rows alone, for reads whose calendars all come from the legacy JSON cache: the read
-- rows' columns without the SQL cache's state (the caller does not look at it) and each calendar's
-- part of its legacy row. Rows of one provider calendar share an owner, as in availability.sql.
SELECT req.id AS req_id, req."userId" AS user_id, req.integration,
       req."userId" || ':' || req.integration || ':' || req."externalId" AS owner_id,
       NULL::text AS channel_id, NULL::timestamp AS channel_expiration, NULL::timestamp AS subscribed_at,
       NULL::timestamp AS synced_at, NULL::timestamp AS sync_error_at, NULL::timestamp AS window_start,
       NULL::timestamp AS window_end, 0 AS sync_errors, NULL::int8 AS pending_ms, false AS credential_invalid,
       NULL::timestamp[] AS starts, NULL::timestamp[] AS ends,
       (lg."credentialId" IS NOT NULL) AS legacy_found,
       (lg.calendars -> req."externalId")::text AS legacy_calendar
FROM req
LEFT JOIN legacy lg ON lg."credentialId" = req."credentialId" AND req.integration = 'google_calendar'
