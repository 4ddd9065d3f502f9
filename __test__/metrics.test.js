'use strict'
// metrics() (SPEC §13): the output is read with a Prometheus text-format parser, and the counters
// must move with real traffic through the public API — webhooks, syncs, reads, provider requests
// and retries, token refreshes, renewals, the outbox — with no label naming a calendar or event.
const test = require('node:test')
const assert = require('node:assert/strict')
const parse = require('parse-prometheus-text-format')
const { startStack } = require('./stack')
const seed = require('../dev/seed')

const HOUR = 3600 * 1000
const at = (h) => new Date(Math.ceil(Date.now() / HOUR) * HOUR + h * HOUR).toISOString()
const timed = (h, extra = {}) => ({ summary: 'x', start: { dateTime: at(h) }, end: { dateTime: at(h + 1) }, ...extra })

let s
test.before(async () => {
  s = await startStack({ syncMinIntervalMs: 0 })
})
test.after(() => s?.close())

async function scrape() {
  const text = await s.sync.metrics()
  const families = parse(text)
  const byName = new Map(families.map((f) => [f.name, f]))
  /** The sum of the samples of `name` whose labels include `labels` (histograms: their count). */
  const value = (name, labels = {}) => {
    const fam = byName.get(name)
    if (!fam) return 0 // a family with no series yet is not exposed
    if (fam.type === 'HISTOGRAM') {
      // This parser folds the series of a labelled histogram into one; its `_count` samples are
      // plain counter lines, read here directly.
      return text.split('\n').filter((l) => l.startsWith(`${name}_count`)).map((l) => /^\S+?(?:\{(.*)\})? (\S+)$/.exec(l))
        .filter((m) => Object.entries(labels).every(([k, v]) => (m[1] ?? '').split(',').includes(`${k}="${v}"`)))
        .reduce((sum, m) => sum + Number(m[2]), 0)
    }
    return fam.metrics
      .filter((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v))
      .reduce((sum, m) => sum + Number(m.value ?? m.count), 0)
  }
  return { text, families, byName, value }
}

test('the counters move with real traffic; every family is documented; no label names a calendar', async () => {
  const before = await scrape()
  const moved = (after, name, labels) => after.value(name, labels) - before.value(name, labels)

  await seed.setGlobalFlag(s.db, 'calendar-subscription-sync', true)
  const user = await s.googleUser()
  await seed.setUserFlag(s.db, user.userId, 'calendar-subscription-sync', true)
  const cal = await s.googleCalendar(user)
  await s.sync.subscribe(cal.id)
  // A push notification and its sync; a booking of the app's reaches the outbox.
  await s.emu.google.insertEvent(cal.externalId, timed(2, { iCalUID: 'bk-m@cal.com' }))
  // The provider fails once: the request is retried.
  s.emu.inject({ endpoint: 'google.events.list', status: 503, times: 1 })
  await s.emu.google.insertEvent(cal.externalId, timed(4))
  // A forged notification is answered 4xx.
  const forged = await s.sync.handleGoogleWebhook({ headers: { 'x-goog-channel-id': 'nope', 'x-goog-resource-id': 'nope', 'x-goog-channel-token': 'forged', 'x-goog-resource-state': 'exists' } })
  // An access token past its expiry is refreshed before the next sync.
  await s.db.query(`UPDATE "Credential" SET key = jsonb_set(key, '{expiry_date}', '0'::jsonb) WHERE id = $1`, [user.credentialId])
  await s.sync.syncCalendar(cal.id)
  // Outlook too.
  const ms = await s.microsoftUser()
  const outlook = await s.outlookCalendar(ms)
  await s.sync.subscribe(outlook.id)
  // Reads: one served, one unknown calendar.
  await s.sync.getCachedAvailability({ selectedCalendarIds: [cal.id, 'no-such-calendar'], timeMin: at(0), timeMax: at(24) })
  await assert.rejects(s.sync.getCachedAvailability({ selectedCalendarIds: [cal.id], timeMin: at(2), timeMax: at(1) }))
  // A renewal pass subscribes a calendar the flag covers but nobody subscribed yet.
  await s.googleCalendar(user)
  await s.sync.renewWatches()

  const after = await scrape()
  // Two changes, and the `sync` message Google sends on each of the two new channels.
  assert.equal(moved(after, 'calsync_webhooks_total', { provider: 'google', status: '200' }), 4)
  assert.equal(moved(after, 'calsync_webhooks_total', { provider: 'google', status: String(forged.status) }), 1)
  assert.ok(forged.status >= 400 && forged.status < 500)
  assert.ok(moved(after, 'calsync_webhooks_total', { provider: 'microsoft' }) >= 1, 'the Graph validation handshake')
  assert.ok(moved(after, 'calsync_syncs_total', { provider: 'google', kind: 'full', outcome: 'ok' }) >= 2, 'two subscriptions')
  assert.ok(moved(after, 'calsync_syncs_total', { provider: 'google', kind: 'incremental', outcome: 'ok' }) >= 3)
  assert.ok(moved(after, 'calsync_syncs_total', { provider: 'microsoft', kind: 'full', outcome: 'ok' }) >= 1)
  assert.equal(moved(after, 'calsync_sync_duration_seconds', { provider: 'google' }), moved(after, 'calsync_syncs_total', { provider: 'google' }) - moved(after, 'calsync_syncs_total', { provider: 'google', outcome: 'coalesced' }))
  assert.ok(moved(after, 'calsync_propagation_lag_seconds', { provider: 'google' }) >= 2, 'both inserted events')
  assert.equal(moved(after, 'calsync_provider_requests_total', { endpoint: 'google.events.list', status: '503' }), 1)
  assert.equal(moved(after, 'calsync_provider_retries_total', { endpoint: 'google.events.list' }), 1)
  assert.ok(moved(after, 'calsync_provider_requests_total', { endpoint: 'google.events.watch', status: '200' }) >= 2)
  assert.ok(moved(after, 'calsync_provider_requests_total', { endpoint: 'microsoft.subscriptions.create', status: '201' }) >= 1)
  assert.equal(moved(after, 'calsync_token_refreshes_total', { provider: 'google', outcome: 'ok' }), 1)
  assert.equal(moved(after, 'calsync_provider_requests_total', { endpoint: 'google.token', status: '200' }), 1)
  assert.equal(moved(after, 'calsync_reads_total', { outcome: 'ok' }), 1)
  assert.equal(moved(after, 'calsync_reads_total', { outcome: 'INVALID_ARGUMENT' }), 0, 'bad arguments are refused before the read')
  assert.equal(moved(after, 'calsync_read_calendars_served_total', { source: 'sql' }), 1)
  assert.equal(moved(after, 'calsync_read_calendars_uncached_total', { reason: 'not_found' }), 1)
  assert.equal(moved(after, 'calsync_renewals_total', { action: 'subscribed' }), 1)
  assert.equal(after.value('calsync_booking_changes_waiting', { state: 'ready' }), 1)
  assert.equal(after.value('calsync_pending_notifications'), 0, 'every announced change is synced')
  assert.ok(after.value('calsync_pool_connections', { pool: 'front' }) >= 1)

  // Every family is named calsync_* and explained; label values are fixed words, never ids.
  for (const name of ['webhooks_total', 'syncs_total', 'sync_duration_seconds', 'propagation_lag_seconds', 'reads_total',
    'read_calendars_served_total', 'read_calendars_uncached_total', 'provider_requests_total', 'provider_retries_total',
    'token_refreshes_total', 'renewals_total', 'pending_notifications', 'booking_changes_waiting', 'pool_connections']) {
    assert.ok(after.byName.has(`calsync_${name}`), `calsync_${name} is exposed`)
  }
  for (const f of after.families) {
    assert.match(f.name, /^calsync_/)
    assert.ok(f.help.length > 20, `${f.name} has a HELP text`)
  }
  const ids = [cal.id, cal.externalId, outlook.id, outlook.externalId, user.key.access_token, 'no-such-calendar', 'bk-m']
  for (const id of ids) assert.ok(!after.text.includes(id), `no label carries ${id}`)
})

test('every known series starts at 0, and the shipped alert rules and dashboard query only families calsync exports', async () => {
  const fs = require('node:fs')
  const path = require('node:path')
  // With a read replica configured (the same server: no read is made), so that its series exist.
  const fresh = await require('./helpers').calsync.CalendarSync.connect({ ...s.options, readDatabaseUrl: s.options.databaseUrl })
  let text
  try {
    text = await fresh.metrics()
  } finally {
    await fresh.close()
  }
  // Before any traffic: the outcomes an alert or a rate needs are there, at 0.
  for (const line of [
    'calsync_webhook_notifications_total{outcome="forged",provider="google"} 0',
    'calsync_webhook_notifications_total{outcome="unknown",provider="microsoft"} 0',
    'calsync_syncs_total{kind="full",outcome="failed",provider="google"} 0',
    'calsync_token_refreshes_total{outcome="client_rejected",provider="microsoft"} 0',
    'calsync_read_calendars_uncached_total{reason="sync_failed"} 0',
    'calsync_renewals_total{action="orphan_stopped"} 0',
    'calsync_pending_notifications_overdue 0',
    'calsync_reads_served_total{by="replica"} 0',
    'calsync_replica_fallbacks_total{reason="lagging",replica="1"} 0',
  ]) assert.ok(text.includes(line), line)
  const exported = new Set(parse(text).map((f) => f.name))
  const root = path.join(__dirname, '..')
  for (const file of ['calsync.rules.yml', 'grafana/calsync-dashboard.json']) {
    const used = new Set(fs.readFileSync(path.join(root, file), 'utf8').match(/calsync_[a-z_]+/g))
    assert.ok(used.size >= 5, file)
    for (const name of used) {
      const family = name.replace(/_(bucket|count|sum)$/, '')
      assert.ok(exported.has(family), `${file} uses ${name}, which calsync does not export`)
    }
  }
})
