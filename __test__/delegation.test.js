'use strict'
// Delegation credentials (SPEC §2, §5): calendars an organisation connects through Google Workspace
// domain-wide delegation — a `SelectedCalendar` with `delegationCredentialId` and no user
// credential — are subscribed, synced, served, renewed and cleaned up like OAuth ones. calsync signs
// an RS256 JWT with the service account's key and exchanges it for a token acting as the user; the
// emulator verifies the signature against the service account's public key. Tokens stay in memory;
// turning the delegation credential off stops its calendars.
const test = require('node:test')
const assert = require('node:assert/strict')
const { startStack, spans } = require('./stack')
const seed = require('../dev/seed')
const { shiftClockForTesting } = require('../calsync.js')

const HOUR = 3600 * 1000
const day0 = Math.ceil(Date.now() / (24 * HOUR)) * 24 * HOUR
const at = (h) => new Date(day0 + h * HOUR).toISOString()
const range = { timeMin: at(0), timeMax: at(24 * 7) }
const timed = (h) => ({ summary: 'x', start: { dateTime: at(h) }, end: { dateTime: at(h + 1) } })

let s
let org
test.before(async () => {
  s = await startStack()
  org = await seed.createTeam(s.db, { name: 'Acme', isOrganization: true })
})
test.after(async () => {
  shiftClockForTesting(0)
  s?.emu.setClock(0)
  await s?.close()
})

/** A Workspace domain with delegation to a service account, and a user of it with a calendar. */
async function workspace({ domain = `acme-${Math.random().toString(36).slice(2, 8)}.example`, email } = {}) {
  const key = s.emu.google.addServiceAccount({ domain })
  const delegationId = await seed.createDelegationCredential(s.db, { organizationId: org, domain, serviceAccountKey: key })
  const address = email ?? `ada@${domain}`
  const userId = await seed.createUser(s.db, { email: address })
  await seed.setUserFlag(s.db, userId, 'calendar-subscription-cache', true)
  s.emu.google.createCalendar(address)
  const id = await seed.createSelectedCalendar(s.db, { userId, externalId: address, delegationCredentialId: delegationId })
  return { key, domain, delegationId, userId, id, externalId: address }
}

const cached = async (id) => {
  const res = await s.sync.getCachedAvailability({ selectedCalendarIds: [id], ...range })
  return { res, blocks: res.busy.map((b) => [Date.parse(b.start), Date.parse(b.end)]) }
}

test('a calendar reached through domain-wide delegation is subscribed, synced, served and renewed; the token stays in memory', async () => {
  const w = await workspace()
  await s.emu.google.insertEvent(w.externalId, timed(9), { notify: false })
  const jwtBefore = s.emu.counter('google.token.jwt')
  const sub = await s.sync.subscribe(w.id)
  assert.ok(sub.channelId)
  assert.equal(s.emu.counter('google.token.jwt') - jwtBefore, 1, 'one JWT grant')
  // A change pushed by Google is synced with the same (cached) token.
  await s.emu.google.insertEvent(w.externalId, timed(12))
  const { res, blocks } = await cached(w.id)
  assert.deepEqual(res.served, [w.id])
  assert.deepEqual(blocks, spans(s.emu.google.freeBusyOf(w.externalId, range.timeMin, range.timeMax)))
  assert.equal(s.emu.counter('google.token.jwt') - jwtBefore, 1, 'the token is reused')
  // Nothing was written to Cal.com's credential tables.
  assert.equal((await s.db.query('SELECT count(*)::int AS n FROM "Credential" WHERE "userId" = $1', [w.userId])).rows[0].n, 0)
  const { rows: [dc] } = await s.db.query('SELECT "serviceAccountKey" FROM "DelegationCredential" WHERE id = $1', [w.delegationId])
  assert.deepEqual(dc.serviceAccountKey, w.key)
  // Cron treats it like any other calendar.
  const report = await s.sync.renewWatches()
  assert.equal(report.failed, 0)
  const health = await s.sync.status()
  assert.ok(health.some((h) => h.health === 'healthy'))
  await s.sync.cleanup()
  assert.deepEqual((await cached(w.id)).blocks, spans(s.emu.google.freeBusyOf(w.externalId, range.timeMin, range.timeMax)), 'still served after cleanup')

  // An hour later the token has expired: a new JWT grant, signed afresh.
  const offset = 2 * HOUR
  shiftClockForTesting(offset)
  s.emu.setClock(offset)
  try {
    await s.emu.google.insertEvent(w.externalId, timed(15), { notify: false })
    await s.sync.syncCalendar(w.id)
    assert.equal(s.emu.counter('google.token.jwt') - jwtBefore, 2)
  } finally {
    shiftClockForTesting(0)
    s.emu.setClock(0)
  }
})

test('turning the delegation credential off stops its calendars: reads say credential_invalid, syncs fail, renewal unsubscribes', async () => {
  const w = await workspace()
  await s.sync.subscribe(w.id)
  assert.deepEqual((await cached(w.id)).res.served, [w.id])
  await s.db.query('UPDATE "DelegationCredential" SET enabled = false WHERE id = $1', [w.delegationId])
  assert.deepEqual((await cached(w.id)).res.uncached, [{ id: w.id, reason: 'credential_invalid' }])
  await assert.rejects(s.sync.syncCalendar(w.id), (e) => e.code === 'PROVIDER_AUTH' && /disabled/.test(e.message))
  const report = await s.sync.renewWatches()
  assert.ok(report.stopped >= 1)
  const { rows: [row] } = await s.db.query('SELECT "channelId" FROM "SelectedCalendar" WHERE id = $1', [w.id])
  assert.equal(row.channelId, null)
  // On again: the next renewal subscribes it again.
  await s.db.query('UPDATE "DelegationCredential" SET enabled = true WHERE id = $1', [w.delegationId])
  assert.ok((await s.sync.renewWatches()).created >= 1)
  assert.deepEqual((await cached(w.id)).res.served, [w.id])
})

test('what Google refuses is a PROVIDER_AUTH failure naming why, never the key: a forged signature, a user outside the domain, delegation withdrawn', async () => {
  const noKey = (e) => !/PRIVATE KEY|BEGIN/.test(e.message)
  // Signed with another service account's key: the emulator's signature check fails.
  const forged = await workspace()
  const other = s.emu.google.addServiceAccount({ domain: forged.domain })
  await s.db.query(`UPDATE "DelegationCredential" SET "serviceAccountKey" = jsonb_set("serviceAccountKey", '{private_key}', to_jsonb($2::text)) WHERE id = $1`, [forged.delegationId, other.private_key])
  await assert.rejects(s.sync.subscribe(forged.id), (e) => e.code === 'PROVIDER_AUTH' && /invalid_grant/.test(e.message) && noKey(e))
  // A user whose address is not in the delegated domain.
  const w = await workspace()
  const outsider = await seed.createUser(s.db, { email: 'bob@elsewhere.example' })
  s.emu.google.createCalendar('bob@elsewhere.example')
  const id = await seed.createSelectedCalendar(s.db, { userId: outsider, externalId: 'bob@elsewhere.example', delegationCredentialId: w.delegationId })
  await assert.rejects(s.sync.subscribe(id), (e) => e.code === 'PROVIDER_AUTH' && /not in the Workspace domain/.test(e.message))
  // The admin withdrew the delegation.
  const withdrawn = await workspace()
  s.emu.google.revokeDelegation(withdrawn.key.client_email)
  await assert.rejects(s.sync.subscribe(withdrawn.id), (e) => e.code === 'PROVIDER_AUTH' && /not authorized \(unauthorized_client\)/.test(e.message))
  // A key that is not a key.
  const broken = await workspace()
  await s.db.query(`UPDATE "DelegationCredential" SET "serviceAccountKey" = '{"client_email": "x@y", "private_key": "not a key"}' WHERE id = $1`, [broken.delegationId])
  await assert.rejects(s.sync.subscribe(broken.id), (e) => e.code === 'PROVIDER_AUTH' && /PEM/.test(e.message))
})

test('an Outlook calendar through a tenant app (client credentials): Graph requests name the user, the token serves the tenant', async () => {
  const domain = `contoso-${Math.random().toString(36).slice(2, 8)}.example`
  const app = s.emu.microsoft.addTenantApp({ domain })
  const delegationId = await seed.createDelegationCredential(s.db, { organizationId: org, domain, serviceAccountKey: app, platform: 'office365' })
  const outlook = async (name) => {
    const email = `${name}@${domain}`
    const userId = await seed.createUser(s.db, { email })
    await seed.setUserFlag(s.db, userId, 'calendar-subscription-cache', true)
    const externalId = `AAMkAD-${name}-${Math.random().toString(36).slice(2, 8)}`
    s.emu.microsoft.createCalendar(externalId)
    const id = await seed.createSelectedCalendar(s.db, { userId, integration: 'office365_calendar', externalId, delegationCredentialId: delegationId })
    return { id, externalId, email }
  }
  // Graph facts the emulator keeps: app-only tokens come from the tenant's authority, and `/me`
  // means nothing with them.
  const tokenAt = (tenant) => fetch(`${s.emu.url}/${tenant}/oauth2/v2.0/token`, { method: 'POST', body: new URLSearchParams({ client_id: app.client_id, client_secret: app.private_key, scope: 'https://graph.microsoft.com/.default', grant_type: 'client_credentials' }) })
  assert.equal((await tokenAt('common')).status, 400)
  const appToken = (await (await tokenAt(app.tenant_id)).json()).access_token
  const me = await fetch(`${s.emu.url}/v1.0/me/calendars/x/calendarView/delta`, { headers: { authorization: `Bearer ${appToken}` } })
  assert.equal(me.status, 400)
  assert.match((await me.json()).error.message, /only valid with delegated authentication/)
  const meg = await outlook('meg')
  const ian = await outlook('ian')
  const before = s.emu.counter('microsoft.token.app')
  for (const c of [meg, ian]) await s.sync.subscribe(c.id)
  assert.equal(s.emu.counter('microsoft.token.app') - before, 1, 'one app token for the whole tenant')
  const { rows: [sub] } = await s.db.query('SELECT "channelResourceId" FROM "SelectedCalendar" WHERE id = $1', [meg.id])
  assert.equal(sub.channelResourceId, `users/${meg.email}/calendars/${meg.externalId}/events`)
  const wall = (h) => at(h).slice(0, 19)
  await s.emu.microsoft.insertEvent(meg.externalId, { subject: 'x', start: { dateTime: wall(10), timeZone: 'UTC' }, end: { dateTime: wall(11), timeZone: 'UTC' } })
  await s.sync.settle() // Graph got its 202; the delta sync runs in the background
  const { res, blocks } = await cached(meg.id)
  assert.deepEqual(res.served, [meg.id])
  assert.deepEqual(blocks, [[Date.parse(at(10)), Date.parse(at(11))]])
  await s.sync.renewWatches() // (the earlier test's refused calendars fail again there)
  const { rows: fine } = await s.db.query(`SELECT sc."channelId", f.code FROM "SelectedCalendar" sc LEFT JOIN "CalendarSyncFailure" f ON f."selectedCalendarId" = sc.id WHERE sc.id = ANY($1)`, [[meg.id, ian.id]])
  assert.deepEqual(fine.map((r) => [Boolean(r.channelId), r.code]), [[true, null], [true, null]])

  // The tenant app's secret was rotated without Cal.com knowing: once the cached token expires,
  // the next one is refused, with the reason named and the secret not shown.
  await s.db.query(`UPDATE "DelegationCredential" SET "serviceAccountKey" = jsonb_set("serviceAccountKey", '{private_key}', '"stale-secret"') WHERE id = $1`, [delegationId])
  const late = await outlook('lea')
  shiftClockForTesting(2 * HOUR)
  s.emu.setClock(2 * HOUR)
  try {
    await assert.rejects(s.sync.subscribe(late.id), (e) => e.code === 'PROVIDER_AUTH' && /invalid_client/.test(e.message) && !e.message.includes('stale-secret'))
  } finally {
    shiftClockForTesting(0)
    s.emu.setClock(0)
  }
  // Off: served no more.
  await s.db.query('UPDATE "DelegationCredential" SET enabled = false WHERE id = $1', [delegationId])
  assert.deepEqual((await cached(meg.id)).res.uncached, [{ id: meg.id, reason: 'credential_invalid' }])
})

test('a delegation credential of the other provider\'s platform is refused clearly', async () => {
  const w = await workspace()
  const userId = await seed.createUser(s.db, { email: `kim@${w.domain}` })
  const id = await seed.createSelectedCalendar(s.db, { userId, integration: 'office365_calendar', externalId: 'AAMkADmismatch', delegationCredentialId: w.delegationId })
  await assert.rejects(s.sync.subscribe(id), (e) => e.code === 'PROVIDER_AUTH' && /workspace platform 'google'/.test(e.message))
})
