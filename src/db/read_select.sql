-- The read rows (after availability.sql): one per requested calendar, with its owner's events.
SELECT cal.req_id, cal.user_id, cal.integration, cal.owner_id, cal.channel_id, cal.channel_expiration,
       cal.subscribed_at, cal.synced_at, cal.sync_error_at, cal.window_start, cal.window_end,
       cal.sync_errors, cal.pending_ms, cal.credential_invalid, ev.starts, ev.ends
FROM cal
LEFT JOIN ev ON ev.owner_id = cal.owner_id
