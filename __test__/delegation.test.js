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
  await assert.rejects(s.sync.subscribe(withdrawn.id), (e) => e.code === 'PROVIDER_AUTH' && /not authorized for domain-wide delegation/.test(e.message))
  // A key that is not a key.
  const broken = await workspace()
  await s.db.query(`UPDATE "DelegationCredential" SET "serviceAccountKey" = '{"client_email": "x@y", "private_key": "not a key"}' WHERE id = $1`, [broken.delegationId])
  await assert.rejects(s.sync.subscribe(broken.id), (e) => e.code === 'PROVIDER_AUTH' && /PEM/.test(e.message))
})

test('a Microsoft tenant delegation credential is refused clearly (Cal.com keeps no Graph app credentials calsync could use)', async () => {
  const domain = 'contoso-delegated.example'
  const delegationId = await seed.createDelegationCredential(s.db, { organizationId: org, domain, serviceAccountKey: { client_id: 'x', private_key: 'y', tenant_id: 'z' }, platform: 'office365' })
  const userId = await seed.createUser(s.db, { email: `meg@${domain}` })
  await seed.setUserFlag(s.db, userId, 'calendar-subscription-cache', true)
  const id = await seed.createSelectedCalendar(s.db, { userId, integration: 'office365_calendar', externalId: 'AAMkADx', delegationCredentialId: delegationId })
  await assert.rejects(s.sync.subscribe(id), (e) => e.code === 'PROVIDER_AUTH' && /Google Workspace delegation only/.test(e.message))
})
