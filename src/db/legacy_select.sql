-- The read rows (`base`: read_select.sql) with each calendar's part of its legacy row, as JSON text:
-- a malformed row is the caller's to report, never a failed read.
SELECT base.*, (lg."credentialId" IS NOT NULL) AS legacy_found,
       (lg.calendars -> req."externalId")::text AS legacy_calendar
FROM base
JOIN req ON req.id = base.req_id
LEFT JOIN legacy lg ON lg."credentialId" = req."credentialId" AND req.integration = 'google_calendar'
