'use strict'
// A read to profile: seeds the read scenario's shape at its --quick size (500 users, 10 calendars for
// the one read, 100 events each), then reads with 16 callers in each mode of MODES (direct, pooled:
// the pooler-mode read, pg: node-postgres's baseline), MS milliseconds each, printing calls/s.
// SIGNAL=1 prints READY before each mode and waits 1.5 s: attach `perf record -a -g` then (see
// BENCHMARKS.md, "Where a read's CPU goes"). KEEP=1 keeps the database for EXPLAIN.
// DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres node bench/read-profile.js
const { Pool } = require('pg')
const { createDatabase } = require('../dev/postgres')
const seed = require('../dev/seed')
const { CalendarSync, applySchema } = require('../calsync.js')
const DAY = 86400e3
;(async () => {
  const url = process.env.DATABASE_URL
  const db = await createDatabase(url, 'calsync_prof')
  await applySchema({ databaseUrl: db.url })
  const pg = new Pool({ connectionString: db.url, max: 16 })
  pg.on('error', () => {}) // idle clients ended by the DROP at the end
  const FLAG = 'calendar-subscription-cache'
  await pg.query(`UPDATE "Feature" SET enabled = true WHERE slug = $1`, [FLAG])
  await seed.setGlobalFlag(pg, FLAG, true)
  await pg.query(`INSERT INTO users (uuid, email) SELECT gen_random_uuid(), 'u' || i || '@b.example' FROM generate_series(1, 500) i`)
  const { rows: [{ first: target }] } = await pg.query('SELECT min(id) AS first FROM users')
  await pg.query(`INSERT INTO "UserFeatures" ("userId", "featureId", "enabled", "assignedBy", "updatedAt") SELECT id, $1, true, 'b', now() FROM users`, [FLAG])
  await pg.query(`INSERT INTO "SelectedCalendar" (id, "userId", integration, "externalId", "channelId", "channelExpiration", "syncSubscribedAt", "syncToken", "syncedAt")
       SELECT 'cal-' || u.id || '-' || c, u.id, 'google_calendar', 'ext-' || u.id || '-' || c, 'ch-' || u.id || '-' || c, now() + interval '6 days', now(), 't', now()
       FROM users u, generate_series(1, 10) c WHERE c <= CASE WHEN u.id = $1 THEN 10 ELSE 2 END`, [target])
  await pg.query(`INSERT INTO "CalendarSyncState" ("selectedCalendarId", "windowStart", "windowEnd", "updatedAt") SELECT id, now() - interval '60 days', now() + interval '180 days', now() FROM "SelectedCalendar"`)
  await pg.query(`INSERT INTO "CalendarCacheEvent" (id, "selectedCalendarId", "externalId", "externalEtag", "iCalUID", summary, start, "end", "timeZone", "updatedAt")
       SELECT sc.id || '-' || e, sc.id, 'e' || e, '"1"', 'e' || e, 'Busy', date_trunc('hour', now()) - interval '30 days' + ((e * 7919) % 2880) * interval '1 hour',
              date_trunc('hour', now()) - interval '30 days' + ((e * 7919) % 2880) * interval '1 hour' + interval '45 minutes', 'UTC', now()
       FROM "SelectedCalendar" sc, generate_series(1, 100) e`)
  await pg.query('VACUUM ANALYZE')
  const ids = (await pg.query('SELECT id FROM "SelectedCalendar" WHERE "userId" = $1 ORDER BY id', [target])).rows.map((r) => r.id)
  const timeMin = new Date(Math.ceil(Date.now() / DAY) * DAY).toISOString()
  const timeMax = new Date(Date.parse(timeMin) + 31 * DAY).toISOString()
  const args = { selectedCalendarIds: ids, timeMin, timeMax }
  const direct = await CalendarSync.connect({ databaseUrl: db.url, maxConnections: 17 })
  const pooled = await CalendarSync.connect({ databaseUrl: db.url, maxConnections: 17, pooler: true })
  const modes = {
    direct: () => direct.getCachedAvailability(args),
    pooled: () => pooled.getCachedAvailability(args),
    pg: async () => (await pg.query({ text: `SELECT "start", "end", "timeZone" FROM "CalendarCacheEvent" WHERE "selectedCalendarId" = ANY($1) AND "start" < $3 AND "end" > $2 AND status <> 'cancelled'`, values: [ids, timeMin, timeMax] })).rows.map((e) => ({ start: e.start.toISOString(), end: e.end.toISOString(), timeZone: e.timeZone })),
  }
  console.error('blocks', (await modes.direct()).busy.length)
  for (const m of Object.values(modes)) for (let i = 0; i < 300; i++) await m()
  for (const name of (process.env.MODES || 'direct,pooled,pg').split(',')) {
    if (process.env.SIGNAL) { console.error('READY', name); await new Promise((r) => setTimeout(r, 1500)) }
    let calls = 0
    const end = Date.now() + Number(process.env.MS || 4000)
    await Promise.all(Array.from({ length: 16 }, async () => { while (Date.now() < end) { await modes[name](); calls++ } }))
    console.error(name, Math.round(calls / (Number(process.env.MS || 4000) / 1000)), 'calls/s')
  }
  await direct.close(); await pooled.close(); await pg.end(); if (process.env.KEEP) console.error('KEEP', db.url, JSON.stringify(args)); else await db.drop()
})().catch((e) => { console.error(e); process.exit(1) })
