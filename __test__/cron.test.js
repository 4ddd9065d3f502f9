'use strict'
const test = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const { fork } = require('node:child_process')
const { startStack, spans } = require('./stack')
const seed = require('../dev/seed')

const FLAG = 'calendar-subscription-cache'
const HOUR = 3600 * 1000
const NO_SAFETY_NET = { resyncAfterMs: -1 }

let s
let org
let sub
let team
let enabledTeam
let disabledTeam
test.before(async () => {
  s = await startStack()
  const db = s.db
  org = await seed.createTeam(db, { name: 'org', isOrganization: true })
  sub = await seed.createTeam(db, { name: 'sub-org', parentId: org })
  team = await seed.createTeam(db, { name: 'team', parentId: sub })
  enabledTeam = await seed.createTeam(db, { name: 'enabled' })
  disabledTeam = await seed.createTeam(db, { name: 'disabled' })
  await seed.setTeamFlag(db, org, FLAG, true)
  await seed.setTeamFlag(db, enabledTeam, FLAG, true)
  await seed.setTeamFlag(db, disabledTeam, FLAG, false)
})
test.after(async () => {
  await s?.close()
})

// Who gets the flag, by kind of user (SPEC §3), and whether their calendars should be watched.
const KINDS = [
  ['userFeatureOnly', true],
  ['organizationOnly', true], // member of a team whose grandparent organization has the flag
  ['enabledTeam', true],
  ['pendingMember', false],
  ['disabledTeam', false],
  ['userRowOff', false], // UserFeatures false beats the organization
  ['nobody', false],
  ['invalidCredential', true], // flagged through the organization, but the Google credential is invalid
]

/** Creates users of every kind with Google and Outlook calendars until `n` calendar rows exist. */
async function populate(n) {
  const db = s.db
  const groups = []
  let rows = 0
  for (let i = 0; rows < n; i++) {
    const [kind, flagged] = KINDS[i % KINDS.length]
    const userId = await seed.createUser(db)
    if (kind === 'userFeatureOnly') await seed.setUserFlag(db, userId, FLAG, true)
    if (kind === 'organizationOnly' || kind === 'userRowOff' || kind === 'invalidCredential') await seed.addMember(db, userId, team)
    if (kind === 'userRowOff') await seed.setUserFlag(db, userId, FLAG, false)
    if (kind === 'enabledTeam') await seed.addMember(db, userId, enabledTeam)
    if (kind === 'pendingMember') await seed.addMember(db, userId, org, { accepted: false })
    if (kind === 'disabledTeam') await seed.addMember(db, userId, disabledTeam)
    const google = await seed.createCredential(db, { userId, type: 'google_calendar', key: s.emu.google.addAccount(), invalid: kind === 'invalidCredential' })
    const outlook = await seed.createCredential(db, { userId, type: 'office365_calendar', key: s.emu.microsoft.addAccount() })
    const gExt = `g-${userId}@example.com`
    s.emu.google.createCalendar(gExt)
    const gRows = [await seed.createSelectedCalendar(db, { userId, externalId: gExt, credentialId: google })]
    if (i % 3 === 0) gRows.push(await seed.createSelectedCalendar(db, { userId, externalId: gExt, credentialId: google, eventTypeId: 100 + i }))
    if (i % 5 === 0) gRows.push(await seed.createSelectedCalendar(db, { userId, externalId: gExt, credentialId: google, eventTypeId: 5000 + i }))
    groups.push({ kind, integration: 'google_calendar', externalId: gExt, rows: gRows, expected: flagged && kind !== 'invalidCredential' })
    const holiday = `en.usa#holiday${userId}@group.v.calendar.google.com`
    groups.push({ kind, integration: 'google_calendar', externalId: holiday, rows: [await seed.createSelectedCalendar(db, { userId, externalId: holiday, credentialId: google })], expected: false })
    const mExt = `AAMk-${userId}`
    s.emu.microsoft.createCalendar(mExt)
    groups.push({ kind, integration: 'office365_calendar', externalId: mExt, rows: [await seed.createSelectedCalendar(db, { userId, integration: 'office365_calendar', externalId: mExt, credentialId: outlook })], expected: flagged })
    rows += gRows.length + 2
  }
  return groups
}

async function channelsOf(group) {
  const { rows } = await s.db.query('SELECT "channelId" FROM "SelectedCalendar" WHERE id = ANY($1)', [group.rows])
  return rows.map((r) => r.channelId)
}

function providerChannels(group, { live }) {
  if (group.integration === 'google_calendar') {
    return [...s.emu.google.channels.values()].filter((c) => c.calendarId === group.externalId && (!live || (!c.stopped && c.expiration > Date.now())))
  }
  return [...s.emu.microsoft.subscriptions.values()].filter((x) => x.calendarId === group.externalId && (!live || !x.deleted))
}

/** Every calendar that should be watched has exactly one live channel, shared by all its rows; no other has any. */
async function assertWatched(groups, { createdOnce = false } = {}) {
  const wrong = []
  for (const g of groups) {
    const ids = await channelsOf(g)
    const live = providerChannels(g, { live: true })
    if (g.expected) {
      const ok = ids.every((c) => c && c === ids[0]) && live.length === 1 && live[0].id === ids[0]
      if (!ok) wrong.push({ ...g, ids, live: live.length })
      if (createdOnce && providerChannels(g, { live: false }).length !== 1) wrong.push({ ...g, created: providerChannels(g, { live: false }).length })
    } else if (ids.some(Boolean) || live.length) {
      wrong.push({ ...g, ids, live: live.length })
    }
  }
  assert.deepEqual(wrong, [], `${wrong.length} calendars wrong, first: ${JSON.stringify(wrong[0])}`)
}

let groups
test('one renewWatches over 1000 calendars subscribes exactly the calendars that should be watched', { timeout: 300_000 }, async () => {
  groups = await populate(1000)
  const report = await s.sync.renewWatches(NO_SAFETY_NET)
  const expected = groups.filter((g) => g.expected)
  assert.equal(report.created, expected.length)
  assert.equal(report.failed, 0)
  assert.ok(report.peakGoogleConcurrency <= 16 && report.peakMicrosoftConcurrency <= 16, JSON.stringify(report))
  await assertWatched(groups, { createdOnce: true })
  // UserFeatures-only and organization-only users are both picked up; generic calendars never.
  for (const kind of ['userFeatureOnly', 'organizationOnly']) assert.ok(groups.some((g) => g.kind === kind && g.expected))
  assert.ok(groups.some((g) => g.rows.length === 3 && g.expected), 'event-type duplicates are covered')
  // Nothing to do on a second run.
  const again = await s.sync.renewWatches(NO_SAFETY_NET)
  assert.equal(again.created + again.renewed + again.stopped + again.failed, 0, JSON.stringify(again))
  const status = await s.sync.status()
  const healthy = status.filter((r) => r.health === 'healthy').reduce((n, r) => n + r.calendars, 0)
  assert.equal(healthy, expected.length)
})

test('channels expiring within 24 h are renewed: old Google channels stopped, Outlook PATCHed, a 404 recreated', async () => {
  const watched = groups.filter((g) => g.expected)
  const all = watched.flatMap((g) => g.rows)
  await s.db.query(`UPDATE "SelectedCalendar" SET "channelExpiration" = NOW() + interval '2 hours' WHERE id = ANY($1)`, [all])
  const outlook = watched.filter((g) => g.integration === 'office365_calendar')
  const vanished = outlook.slice(0, 3)
  for (const g of vanished) providerChannels(g, { live: true })[0].deleted = true
  const before = new Map(await Promise.all(outlook.map(async (g) => [g.externalId, (await channelsOf(g))[0]])))
  const report = await s.sync.renewWatches(NO_SAFETY_NET)
  assert.equal(report.renewed, watched.length)
  assert.equal(report.failed, 0)
  await assertWatched(groups)
  for (const g of outlook) {
    const now = (await channelsOf(g))[0]
    if (vanished.includes(g)) assert.notEqual(now, before.get(g.externalId), 'recreated after a 404 on PATCH')
    else assert.equal(now, before.get(g.externalId), 'renewed in place')
  }
  const { rows } = await s.db.query(`SELECT min("channelExpiration") AS m FROM "SelectedCalendar" WHERE id = ANY($1)`, [all])
  assert.ok(rows[0].m > new Date(Date.now() + 24 * HOUR))
})

test("turning a team's flag off stops its channels and deletes its cached rows", async () => {
  const members = groups.filter((g) => g.kind === 'enabledTeam' && g.expected)
  const g = members.find((x) => x.integration === 'google_calendar')
  await s.emu.google.insertEvent(g.externalId, { start: { dateTime: new Date(Date.now() + 2 * HOUR).toISOString() }, end: { dateTime: new Date(Date.now() + 3 * HOUR).toISOString() } })
  const { rows: cached } = await s.db.query('SELECT count(*)::int AS n FROM "CalendarCacheEvent" WHERE "selectedCalendarId" = ANY($1)', [g.rows])
  assert.equal(cached[0].n, 1)
  await seed.setTeamFlag(s.db, enabledTeam, FLAG, false)
  const report = await s.sync.renewWatches(NO_SAFETY_NET)
  assert.equal(report.stopped, members.length)
  for (const m of members) m.expected = false
  await assertWatched(groups)
  const { rows: after } = await s.db.query('SELECT count(*)::int AS n FROM "CalendarCacheEvent" WHERE "selectedCalendarId" = ANY($1)', [g.rows])
  assert.equal(after[0].n, 0)
})

test('two processes running renewWatches at once on 1000 new calendars: none subscribed twice, none missed', { timeout: 300_000 }, async () => {
  const fresh = await populate(1000)
  for (const g of fresh) if (g.kind === 'enabledTeam') g.expected = false // its flag was turned off above
  const run = () => new Promise((resolve, reject) => {
    const child = fork(path.join(__dirname, 'fixtures', 'renew-worker.js'), { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    child.once('message', (m) => (m.ok ? resolve(m.report) : reject(new Error(m.error))))
    child.send({ options: s.options, renew: { ...NO_SAFETY_NET, batchSize: 50 } })
  })
  const [a, b] = await Promise.all([run(), run()])
  const expected = fresh.filter((g) => g.expected).length
  assert.equal(a.created + b.created, expected, `created ${a.created} + ${b.created}`)
  assert.equal(a.failed + b.failed, 0)
  assert.ok(a.skipped + b.skipped > 0 || a.created === 0 || b.created === 0, 'the runs met')
  await assertWatched(fresh, { createdOnce: true })
  await assertWatched(groups)
})

test('three subscribe failures pause a calendar for 24 h; a success resets the count', async () => {
  const userId = await seed.createUser(s.db)
  await seed.setUserFlag(s.db, userId, FLAG, true)
  const credentialId = await seed.createCredential(s.db, { userId, key: s.emu.google.addAccount() })
  s.emu.google.createCalendar('flaky@example.com')
  const id = await seed.createSelectedCalendar(s.db, { userId, externalId: 'flaky@example.com', credentialId })
  const errors = async () => (await s.db.query('SELECT "syncSubscribedErrorCount" AS n, "channelId" FROM "SelectedCalendar" WHERE id = $1', [id])).rows[0]
  const fault = s.emu.inject({ endpoint: 'google.events.watch', status: 400, times: 3 })
  for (let i = 1; i <= 3; i++) {
    const r = await s.sync.renewWatches(NO_SAFETY_NET)
    assert.equal(r.failed, 1)
    assert.equal((await errors()).n, i)
  }
  assert.equal(fault.times, 0)
  const probe = s.emu.inject({ endpoint: 'google.events.watch', status: 400, times: 1 })
  const paused = await s.sync.renewWatches(NO_SAFETY_NET)
  assert.equal(paused.paused, 1)
  assert.equal(probe.times, 1, 'no subscribe attempt while paused')
  s.emu.clearFaults()
  await s.db.query(`UPDATE "SelectedCalendar" SET "syncSubscribedErrorAt" = NOW() - interval '25 hours' WHERE id = $1`, [id])
  const resumed = await s.sync.renewWatches(NO_SAFETY_NET)
  assert.equal(resumed.created, 1)
  const after = await errors()
  assert.equal(after.n, 0)
  assert.ok(after.channelId)
})

test('with notifications dropped, the safety net restores parity within one interval', async () => {
  const g = groups.find((x) => x.expected && x.integration === 'google_calendar')
  const m = groups.find((x) => x.expected && x.integration === 'office365_calendar')
  s.emu.google.delivery.dropNext = 2
  s.emu.microsoft.delivery.dropNext = 2
  const t = (h) => new Date(Math.ceil(Date.now() / HOUR) * HOUR + h * HOUR)
  await s.emu.google.insertEvent(g.externalId, { start: { dateTime: t(5).toISOString() }, end: { dateTime: t(6).toISOString() } })
  await s.emu.microsoft.insertEvent(m.externalId, { start: { dateTime: t(5).toISOString().slice(0, 19), timeZone: 'UTC' }, end: { dateTime: t(6).toISOString().slice(0, 19), timeZone: 'UTC' } })
  const range = { timeMin: t(0).toISOString(), timeMax: t(24).toISOString() }
  const read = async (id) => spans((await s.sync.getCachedAvailability({ selectedCalendarIds: [id], ...range })).busy)
  assert.deepEqual(await read(g.rows[0]), [], 'the dropped notification left the cache behind')
  const report = await s.sync.renewWatches({ resyncAfterMs: 0 })
  assert.ok(report.resynced >= 2, JSON.stringify(report))
  assert.deepEqual(await read(g.rows[0]), spans(s.emu.google.freeBusyOf(g.externalId, range.timeMin, range.timeMax)))
  assert.deepEqual(await read(m.rows[0]), spans(s.emu.microsoft.scheduleOf(m.externalId, range.timeMin, range.timeMax)))
  assert.equal((await read(m.rows[0])).length, 1)
})

test('a rollout that does not fit one run\'s time budget completes over successive runs, nothing done twice', { timeout: 300_000 }, async () => {
  const fresh = await populate(240)
  for (const g of fresh) if (g.kind === 'enabledTeam') g.expected = false
  s.emu.inject({ endpoint: 'google.events.watch', latencyMs: 150, times: 1e6 })
  s.emu.inject({ endpoint: 'microsoft.subscriptions.create', latencyMs: 150, times: 1e6 })
  const reports = []
  try {
    for (let run = 0; run < 40; run++) {
      const r = await s.sync.renewWatches({ ...NO_SAFETY_NET, budgetMs: 300, concurrency: 2, batchSize: 20 })
      reports.push(r)
      if (r.complete) break
    }
  } finally {
    s.emu.clearFaults()
  }
  assert.equal(reports[0].complete, false, 'the first run ran out of budget')
  assert.ok(reports[0].deferred > 0)
  assert.ok(reports.length > 2, `${reports.length} runs`)
  assert.equal(reports.at(-1).complete, true, 'the rollout finished')
  assert.equal(reports.reduce((n, r) => n + r.created, 0), fresh.filter((g) => g.expected).length)
  await assertWatched(fresh, { createdOnce: true })
})

test('the safety net backs off a failing calendar instead of resyncing it on every run', async () => {
  const g = groups.find((x) => x.expected && x.integration === 'google_calendar')
  const lists = () => s.emu.counter('google.events.list.sequence')
  s.emu.inject({ endpoint: 'google.events.list', status: 400, reason: 'badRequest', times: 1e6 })
  try {
    const first = await s.sync.renewWatches({ resyncAfterMs: 0 })
    assert.ok(first.failed >= 1)
    const { rows: [row] } = await s.db.query('SELECT "syncErrorCount" FROM "SelectedCalendar" WHERE id = $1', [g.rows[0]])
    assert.ok(row.syncErrorCount >= 1)
    const failing = (await s.sync.status()).filter((h) => h.integration === 'google_calendar' && h.health === 'failing')
    assert.ok(failing.some((h) => h.reason === 'PROVIDER_UNAVAILABLE' && h.calendars >= 1), JSON.stringify(failing))
    const before = lists()
    await s.sync.renewWatches({ resyncAfterMs: 0 })
    await s.sync.renewWatches({ resyncAfterMs: 0 })
    const { rows: [again] } = await s.db.query('SELECT "syncErrorCount" FROM "SelectedCalendar" WHERE id = $1', [g.rows[0]])
    assert.equal(again.syncErrorCount, row.syncErrorCount, 'not retried within its backoff')
    // Once the backoff (1 minute after one failure, doubling) is over, the next run retries.
    await s.db.query(`UPDATE "SelectedCalendar" SET "syncErrorAt" = "syncErrorAt" - interval '1 day' WHERE id = ANY($1)`, [g.rows])
    s.emu.clearFaults()
    const retried = await s.sync.renewWatches({ resyncAfterMs: 0 })
    assert.ok(retried.resynced >= 1)
    assert.ok(lists() > before)
    const { rows: [healed] } = await s.db.query('SELECT "syncErrorCount" FROM "SelectedCalendar" WHERE id = $1', [g.rows[0]])
    assert.equal(healed.syncErrorCount, 0)
    const { rows: why } = await s.db.query('SELECT 1 FROM "CalendarSyncFailure" WHERE "selectedCalendarId" = ANY($1)', [g.rows])
    assert.equal(why.length, 0, 'a success clears the reason')
  } finally {
    s.emu.clearFaults()
  }
})
