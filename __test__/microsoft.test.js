'use strict'
const test = require('node:test')
const assert = require('node:assert/strict')
const { startStack, spans } = require('./stack')
const { startReceiver } = require('../dev/receiver')

const HOUR = 3600 * 1000
const day0 = Math.ceil(Date.now() / (24 * HOUR)) * 24 * HOUR
const iso = (h, m = 0) => new Date(day0 + h * HOUR + m * 60000).toISOString()
const local = (h, m = 0) => iso(h, m).slice(0, 19) // Graph's offset-less wall-clock time (here in UTC)
const range = { timeMin: iso(0), timeMax: iso(24 * 14) }
const SECRET = 'test-ms-client-state'

let s
test.before(async () => {
  s = await startStack({ microsoftPageSize: 10, maxAttempts: 3 })
})
test.after(async () => {
  await s?.close()
})

const ev = (startH, endH, extra = {}) => ({ subject: 'meeting', start: { dateTime: local(startH), timeZone: 'UTC' }, end: { dateTime: local(endH), timeZone: 'UTC' }, ...extra })
const ms = () => s.emu.microsoft

async function cached(id, r = range) {
  const res = await s.sync.getCachedAvailability({ selectedCalendarIds: [id], ...r })
  assert.deepEqual(res.uncached, [], `calendar ${id} not served: ${JSON.stringify(res.uncached)}`)
  return spans(res.busy)
}
const truth = (externalId, r = range) => spans(ms().scheduleOf(externalId, r.timeMin, r.timeMax))

async function rows(id) {
  const { rows: r } = await s.db.query(
    `SELECT "externalId", "start", "end", "status"::text, "externalEtag" FROM "CalendarCacheEvent" WHERE "selectedCalendarId" = $1 ORDER BY "externalId"`, [id])
  return r
}
async function columns(id) {
  const { rows: r } = await s.db.query(
    `SELECT "channelId", "channelKind", "channelResourceId", "channelExpiration", "syncToken", "syncErrorCount", "syncSubscribedErrorCount" FROM "SelectedCalendar" WHERE id = $1`, [id])
  return r[0]
}
async function subscribed() {
  const user = await s.microsoftUser()
  const cal = await s.outlookCalendar(user)
  const sub = await s.sync.subscribe(cal.id)
  return { user, cal, sub }
}
const notification = (subscriptionId, extra = {}) => ({ subscriptionId, clientState: SECRET, changeType: 'updated', resource: 'Users/x/Events/y', ...extra })

test('subscribe validates the endpoint, stores the subscription, and the cache equals getSchedule', async () => {
  const user = await s.microsoftUser()
  const cal = await s.outlookCalendar(user)
  await ms().insertEvent(cal.externalId, ev(9, 10), { notify: false })
  await ms().insertEvent(cal.externalId, { subject: 'PST lunch', start: { dateTime: local(20), timeZone: 'Pacific Standard Time' }, end: { dateTime: local(21), timeZone: 'Pacific Standard Time' } }, { notify: false })
  await ms().insertEvent(cal.externalId, ev(11, 12, { showAs: 'free' }), { notify: false })
  await ms().insertEvent(cal.externalId, ev(13, 14, { showAs: 'tentative' }), { notify: false })
  await ms().insertEvent(cal.externalId, ev(15, 16, { showAs: 'oof' }), { notify: false })
  await ms().insertEvent(cal.externalId, ev(16, 17, { isCancelled: true }), { notify: false })
  const passed = s.emu.counter('microsoft.validation.passed')
  const sub = await s.sync.subscribe(cal.id)
  assert.ok(s.emu.counter('microsoft.validation.passed') > passed, 'Graph validated the notification URL')
  assert.equal(sub.sync.full, true)
  const cols = await columns(cal.id)
  assert.equal(cols.channelId, sub.channelId)
  assert.equal(cols.channelKind, 'graph_subscription')
  assert.match(cols.syncToken, /deltatoken/)
  const lifetime = Date.parse(sub.expiration) - Date.now()
  assert.ok(lifetime > 2.9 * 24 * HOUR && lifetime <= 10070 * 60000, `lifetime ${lifetime}`)
  assert.deepEqual(await cached(cal.id), truth(cal.externalId))
  const stored = await rows(cal.id)
  assert.equal(stored.length, 4, 'free and cancelled events are not stored')
  assert.ok(stored.some((r) => r.status === 'tentative'))
  // 20:00 Pacific is stored in UTC (+7 or +8 h).
  const pst = spans(s.emu.microsoft.scheduleOf(cal.externalId, iso(24), iso(40)))
  assert.ok(pst.length === 1 && pst[0][0] >= Date.parse(iso(27)))
})

test('the validation handshake returns exactly the decoded token as text/plain', async () => {
  const token = 'Validation: <script>alert("x")</script> & more'
  const res = await s.sync.handleMicrosoftWebhook({ query: `?validationToken=${encodeURIComponent(token)}`, headers: {}, body: '' })
  assert.equal(res.status, 200)
  assert.equal(res.headers['Content-Type'], 'text/plain')
  assert.equal(res.headers['X-Content-Type-Options'], 'nosniff', 'no browser sniffs the echo as HTML')
  assert.equal(res.body, token)
})

test('a notification URL that fails the handshake is refused and the failure counted', async () => {
  const user = await s.microsoftUser()
  const cal = await s.outlookCalendar(user)
  const deaf = await startReceiver(() => ({ handleMicrosoftWebhook: async () => ({ status: 200, headers: { 'Content-Type': 'text/html' }, body: '<b>hi</b>' }) }))
  const { CalendarSync } = require('../calsync.js')
  const other = await CalendarSync.connect({ ...s.options, microsoftWebhookUrl: deaf.url })
  try {
    await assert.rejects(other.subscribe(cal.id), { code: 'PROVIDER_UNAVAILABLE', message: /400/ })
    const cols = await columns(cal.id)
    assert.equal(cols.channelId, null)
    assert.equal(cols.syncSubscribedErrorCount, 1)
  } finally {
    await other.close()
    await deaf.close()
  }
})

test('a change at Outlook reaches the cache; the 202 does not wait for the sync', async () => {
  const { cal } = await subscribed()
  s.emu.inject({ endpoint: 'microsoft.delta', latencyMs: 2000, times: 1 })
  const deliveries = ms().deliveries.length
  await ms().insertEvent(cal.externalId, ev(9, 10)) // resolves when the route answered
  assert.equal(ms().deliveries[deliveries].status, 202)
  assert.deepEqual(await cached(cal.id), [], 'answered while the sync behind it was still waiting for Graph')
  await s.sync.settle()
  assert.deepEqual(await cached(cal.id), truth(cal.externalId))
  assert.equal((await cached(cal.id)).length, 1)
})

test('a wrong clientState on one item of a batch: that item is ignored and counted, the others processed', async () => {
  const a = await subscribed()
  const b = await subscribed()
  await ms().insertEvent(a.cal.externalId, ev(9, 10), { notify: false })
  await ms().insertEvent(b.cal.externalId, ev(9, 10), { notify: false })
  const before = await rows(a.cal.id)
  const body = JSON.stringify({ value: [notification(a.sub.channelId, { clientState: 'forged' }), notification(b.sub.channelId), notification('unknown-subscription')] })
  const res = await s.sync.handleMicrosoftWebhook({ headers: {}, body }, { waitForSync: true })
  assert.equal(res.status, 202)
  assert.deepEqual(JSON.parse(res.body), { status: 'accepted', accepted: 2, rejected: 1, unknown: 1 })
  assert.deepEqual(await rows(a.cal.id), before, 'the forged item caused no write')
  assert.equal((await rows(b.cal.id)).length, 1)
  // A batch with only forged items is refused; garbage is a 400; nothing throws.
  const forged = await s.sync.handleMicrosoftWebhook({ body: JSON.stringify({ value: [notification(a.sub.channelId, { clientState: SECRET + 'x' })] }) })
  assert.equal(forged.status, 403)
  for (const junk of ['', 'nope', '{"value": 3}', '[]']) assert.equal((await s.sync.handleMicrosoftWebhook({ body: junk })).status, 400)
  assert.deepEqual(await rows(a.cal.id), before)
})

test('lifecycle: subscriptionRemoved recreates, reauthorizationRequired renews, missed resyncs', async () => {
  const { cal, sub } = await subscribed()
  // subscriptionRemoved: Graph dropped it; a new one must exist afterwards.
  await ms().lifecycle(sub.channelId, 'subscriptionRemoved')
  await s.sync.settle()
  const after = await columns(cal.id)
  assert.notEqual(after.channelId, sub.channelId)
  assert.deepEqual(ms().liveSubscriptions(cal.externalId).map((x) => x.id), [after.channelId])
  // reauthorizationRequired: renewed in place (PATCH), same id, later expiry.
  await s.db.query(`UPDATE "SelectedCalendar" SET "channelExpiration" = NOW() WHERE id = $1`, [cal.id])
  const patches = s.emu.counter(`PATCH /v1.0/subscriptions/${after.channelId}`)
  await ms().lifecycle(after.channelId, 'reauthorizationRequired')
  await s.sync.settle()
  const renewed = await columns(cal.id)
  assert.equal(renewed.channelId, after.channelId)
  assert.equal(s.emu.counter(`PATCH /v1.0/subscriptions/${after.channelId}`) - patches, 1)
  assert.ok(renewed.channelExpiration > new Date(Date.now() + 24 * HOUR))
  // missed: notifications were lost; a resync picks up the change.
  await ms().insertEvent(cal.externalId, ev(9, 10), { notify: false })
  await ms().lifecycle(after.channelId, 'missed')
  await s.sync.settle()
  assert.deepEqual(await cached(cal.id), truth(cal.externalId))
  assert.equal((await cached(cal.id)).length, 1)
  // A PATCH answered 404 (the subscription vanished) recreates it.
  ms().subscriptions.get(after.channelId).deleted = true
  await ms().lifecycle(after.channelId, 'reauthorizationRequired').catch(() => {})
  await s.sync.settle()
  const recreated = await columns(cal.id)
  assert.notEqual(recreated.channelId, after.channelId)
  assert.equal(ms().liveSubscriptions(cal.externalId).length, 1)
})

test('an expired delta token leads to a full resync without stale rows', async () => {
  const { cal } = await subscribed()
  const keep = await ms().insertEvent(cal.externalId, ev(9, 10), { notify: false })
  const gone = await ms().insertEvent(cal.externalId, ev(11, 12), { notify: false })
  await s.sync.syncCalendar(cal.id)
  assert.equal((await rows(cal.id)).length, 2)
  await ms().deleteEvent(cal.externalId, gone.id, { notify: false })
  ms().expireDeltaTokens(cal.externalId)
  const report = await s.sync.syncCalendar(cal.id)
  assert.equal(report.full, true)
  assert.equal(report.fullReason, 'token_expired')
  assert.deepEqual((await rows(cal.id)).map((r) => r.externalId), [keep.id])
})

test('a fault on page 3 of a 5-page delta leaves the old deltaLink and rows; the retry completes', async () => {
  const user = await s.microsoftUser()
  const cal = await s.outlookCalendar(user)
  for (let i = 0; i < 45; i++) await ms().insertEvent(cal.externalId, ev(i, i + 1), { notify: false })
  await s.sync.subscribe(cal.id)
  for (let i = 45; i < 48; i++) await ms().insertEvent(cal.externalId, ev(i, i + 1), { notify: false })
  const before = { rows: await rows(cal.id), cols: await columns(cal.id) }
  s.emu.inject({ endpoint: 'microsoft.delta', status: 503, skip: 2, times: 100 })
  const err = await s.sync.syncCalendar(cal.id, { full: true }).then(() => null, (e) => e)
  s.emu.clearFaults()
  assert.equal(err?.code, 'PROVIDER_UNAVAILABLE')
  assert.deepEqual(await rows(cal.id), before.rows)
  assert.equal((await columns(cal.id)).syncToken, before.cols.syncToken)
  const report = await s.sync.syncCalendar(cal.id, { full: true })
  assert.equal(report.pages, 5)
  assert.equal((await rows(cal.id)).length, 48)
  assert.deepEqual(await cached(cal.id), truth(cal.externalId))
})

test('429 with Retry-After: 2.128 is honoured', async () => {
  const { cal } = await subscribed()
  s.emu.inject({ endpoint: 'microsoft.delta', status: 429, retryAfter: '2.128', times: 1 })
  const t0 = Date.now()
  await s.sync.syncCalendar(cal.id)
  assert.ok(Date.now() - t0 >= 2128, `retried after ${Date.now() - t0} ms`)
})

test('200 concurrent notifications cost at most 2 delta sequences; replays change nothing', async () => {
  const { cal, sub } = await subscribed()
  for (let i = 0; i < 15; i++) await ms().insertEvent(cal.externalId, ev(i, i + 1), { notify: false })
  const body = JSON.stringify({ value: [notification(sub.channelId)] })
  const before = s.emu.counter('microsoft.delta.sequence')
  const results = await Promise.all(Array.from({ length: 200 }, () => s.sync.handleMicrosoftWebhook({ body }, { waitForSync: true })))
  assert.ok(results.every((r) => r.status === 202))
  const seqs = s.emu.counter('microsoft.delta.sequence') - before
  assert.ok(seqs >= 1 && seqs <= 2, `${seqs} delta sequences`)
  assert.deepEqual(await cached(cal.id), truth(cal.externalId))
  const snapshot = await rows(cal.id)
  await Promise.all(Array.from({ length: 20 }, () => s.sync.handleMicrosoftWebhook({ body })))
  await s.sync.settle()
  assert.deepEqual(await rows(cal.id), snapshot)
})

test('rotating refresh tokens: every refresh stores the new one', async () => {
  const { user, cal } = await subscribed()
  for (let round = 0; round < 3; round++) {
    await s.db.query(`UPDATE "Credential" SET key = key || '{"expiry_date": 1}'::jsonb WHERE id = $1`, [user.credentialId])
    const before = (await s.db.query('SELECT key FROM "Credential" WHERE id = $1', [user.credentialId])).rows[0].key
    await s.sync.syncCalendar(cal.id)
    const after = (await s.db.query('SELECT key FROM "Credential" WHERE id = $1', [user.credentialId])).rows[0].key
    assert.notEqual(after.refresh_token, before.refresh_token, 'the rotated refresh token is stored')
    assert.ok(after.expiry_date > Date.now() / 1000 + 1800 && after.expiry_date < Date.now() / 1000 + 7200, 'expiry_date in seconds')
    assert.equal(after.email, user.key.email, 'other fields are kept')
  }
  // The emulator refuses spent refresh tokens, so three good rounds prove each new one was kept.
  const { rows: cred } = await s.db.query('SELECT invalid FROM "Credential" WHERE id = $1', [user.credentialId])
  assert.equal(cred[0].invalid, false)
})

test('unsubscribe deletes the Graph subscription and the cached rows', async () => {
  const { cal } = await subscribed()
  await ms().insertEvent(cal.externalId, ev(9, 10))
  await s.sync.settle()
  assert.equal((await rows(cal.id)).length, 1)
  await s.sync.unsubscribe(cal.id)
  assert.equal(ms().liveSubscriptions(cal.externalId).length, 0)
  assert.deepEqual(await rows(cal.id), [])
})

test('events in a custom time zone: timed ones exact (Graph converts them), all-day ones conservatively busy, never free', async () => {
  const CUSTOM = 'tzone://Microsoft/Custom'
  const user = await s.microsoftUser()
  const cal = await s.outlookCalendar(user)
  // An all-day out-of-office day whose zone is really Kathmandu (UTC+5:45), and a meeting at 09:00
  // in a zone that is really St. John's (UTC−3:30 or −2:30).
  await ms().insertEvent(cal.externalId, { subject: 'offsite', isAllDay: true, showAs: 'oof', start: { dateTime: `${iso(48).slice(0, 10)}T00:00:00.0000000`, timeZone: CUSTOM }, end: { dateTime: `${iso(72).slice(0, 10)}T00:00:00.0000000`, timeZone: CUSTOM }, customTimeZone: 'Asia/Kathmandu' }, { notify: false })
  await ms().insertEvent(cal.externalId, { subject: 'call', start: { dateTime: local(24 * 5 + 9), timeZone: CUSTOM }, end: { dateTime: local(24 * 5 + 10), timeZone: CUSTOM }, customTimeZone: 'America/St_Johns' }, { notify: false })
  await s.sync.subscribe(cal.id)
  const got = await cached(cal.id)
  const want = truth(cal.externalId)
  assert.equal(want.length, 2)
  // Every busy instant of the truth is busy in the cache.
  for (const [a, b] of want) assert.ok(got.some(([x, y]) => x <= a && b <= y), `${new Date(a).toISOString()} not covered`)
  // The meeting is exact; the day is busy from its midnight at UTC+14 to the next at UTC−12.
  assert.ok(got.some(([x, y]) => x === want[1][0] && y === want[1][1]))
  assert.ok(got.some(([x, y]) => x === Date.parse(iso(48 - 14)) && y === Date.parse(iso(72 + 12))))
})

test('an oversized notification body is refused with 413 before it is parsed', async () => {
  const body = JSON.stringify({ value: [{ subscriptionId: 'x', clientState: 'y', padding: 'z'.repeat(2 << 20) }] })
  const res = await s.sync.handleMicrosoftWebhook({ body })
  assert.equal(res.status, 413)
})
