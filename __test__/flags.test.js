'use strict'
const test = require('node:test')
const assert = require('node:assert/strict')
const { freshDatabase, calsync } = require('./helpers')
const seed = require('../dev/seed')

const FLAG = 'calendar-subscription-cache'
let env
let sync

test.before(async () => {
  env = await freshDatabase()
  sync = await calsync.CalendarSync.connect({ databaseUrl: env.url, flagCacheTtlMs: 0 })
})
test.after(async () => {
  await sync?.close()
  await env?.teardown()
})

const on = (target, slug = FLAG) => sync.isFeatureEnabled(slug, target)

test("the feature's documented SQL, with \"enabled\" true, runs against the shipped schema", async () => {
  const db = env.pg
  // Real Cal.com has no default for users.uuid nor for UserFeatures/TeamFeatures.enabled: the
  // snippets that omit them fail there, so the working form supplies them.
  await db.query('INSERT INTO "users" ("id", "uuid", "email") VALUES (123, gen_random_uuid(), $1)', ['doc-user@example.com'])
  await db.query('INSERT INTO "Team" ("id", "name") VALUES (456, $1)', ['doc-team'])
  await db.query(`INSERT INTO "Feature" ("slug","enabled","description","type","stale","lastUsedAt","createdAt","updatedAt","updatedBy") VALUES ('calendar-subscription-cache', false, '…', 'OPERATIONAL', false, NULL, NOW(), NOW(), NULL) ON CONFLICT (slug) DO NOTHING;`)
  await db.query(`INSERT INTO "UserFeatures" ("userId","featureId","enabled","assignedAt","assignedBy","updatedAt") VALUES (123,'calendar-subscription-cache',true,NOW(),'admin',NOW()) ON CONFLICT ("userId","featureId") DO NOTHING;`)
  await db.query(`INSERT INTO "TeamFeatures" ("teamId","featureId","enabled","assignedAt","assignedBy","updatedAt") VALUES (456,'calendar-subscription-cache',true,NOW(),'admin',NOW()) ON CONFLICT ("teamId","featureId") DO NOTHING;`)
  // The global row was shipped disabled, so nothing is on yet.
  assert.equal(await on({ userId: 123 }), false)
  assert.equal(await on({ teamId: 456 }), false)
  await db.query(`UPDATE "Feature" SET "enabled" = true WHERE "slug" = 'calendar-subscription-cache'`)
  assert.equal(await on({ userId: 123 }), true)
  assert.equal(await on({ teamId: 456 }), true)
  // Every SPEC §3 flag ships as a disabled row.
  const { rows } = await db.query(`SELECT slug, enabled FROM "Feature" WHERE slug LIKE 'calendar-%' ORDER BY slug`)
  assert.deepEqual(rows.map((r) => r.slug), ['calendar-cache-sql', 'calendar-cache-sql-write', 'calendar-subscription-cache', 'calendar-subscription-sync'])
  assert.deepEqual(rows.filter((r) => r.slug !== FLAG).map((r) => r.enabled), [false, false, false])
})

test('user and team rules', async (t) => {
  const db = env.pg
  const slug = 'flag-rules'
  await seed.setGlobalFlag(db, slug, true)
  const org = await seed.createTeam(db, { name: 'org', isOrganization: true })
  const subOrg = await seed.createTeam(db, { name: 'sub', parentId: org })
  const team = await seed.createTeam(db, { name: 'team', parentId: subOrg })
  const loneTeam = await seed.createTeam(db, { name: 'lone' })

  await t.test('global off beats a user row that is on', async () => {
    const u = await seed.createUser(db)
    await seed.setGlobalFlag(db, 'flag-global-off', false)
    await seed.setUserFlag(db, u, 'flag-global-off', true)
    assert.equal(await on({ userId: u }, 'flag-global-off'), false)
    await seed.setGlobalFlag(db, 'flag-global-off', true)
    assert.equal(await on({ userId: u }, 'flag-global-off'), true)
  })

  await t.test('an unknown flag is off', async () => {
    assert.equal(await on({ userId: 1 }, 'no-such-flag'), false)
  })

  await t.test('a user row that is on', async () => {
    const u = await seed.createUser(db)
    assert.equal(await on({ userId: u }, slug), false)
    await seed.setUserFlag(db, u, slug, true)
    assert.equal(await on({ userId: u }, slug), true)
  })

  await t.test('a team that is on, only through an accepted membership', async () => {
    await seed.setTeamFlag(db, loneTeam, slug, true)
    const member = await seed.createUser(db)
    const pending = await seed.createUser(db)
    await seed.addMember(db, member, loneTeam)
    await seed.addMember(db, pending, loneTeam, { accepted: false })
    assert.equal(await on({ userId: member }, slug), true)
    assert.equal(await on({ userId: pending }, slug), false)
  })

  await t.test('a user row that is off blocks an enabled team', async () => {
    const u = await seed.createUser(db)
    await seed.addMember(db, u, loneTeam)
    assert.equal(await on({ userId: u }, slug), true)
    await seed.setUserFlag(db, u, slug, false)
    assert.equal(await on({ userId: u }, slug), false)
  })

  await t.test('organizations: parent and grandparent', async () => {
    const u = await seed.createUser(db)
    await seed.addMember(db, u, team)
    assert.equal(await on({ userId: u }, slug), false)
    assert.equal(await on({ teamId: team }, slug), false)
    await seed.setTeamFlag(db, org, slug, true) // grandparent of `team`
    assert.equal(await on({ userId: u }, slug), true)
    assert.equal(await on({ teamId: team }, slug), true)
    assert.equal(await on({ teamId: subOrg }, slug), true)
    await seed.setTeamFlag(db, org, slug, false)
    await seed.setTeamFlag(db, subOrg, slug, true) // parent of `team`
    assert.equal(await on({ userId: u }, slug), true)
    assert.equal(await on({ teamId: org }, slug), false)
  })

  await t.test("a team's own row decides before its ancestors", async () => {
    await seed.setTeamFlag(db, subOrg, slug, true)
    await seed.setTeamFlag(db, team, slug, false)
    assert.equal(await on({ teamId: team }, slug), false)
    await seed.setTeamFlag(db, team, slug, true)
    await seed.setTeamFlag(db, subOrg, slug, false)
    assert.equal(await on({ teamId: team }, slug), true)
  })

  await t.test('a pending membership in an enabled organization is ignored', async () => {
    await seed.setTeamFlag(db, org, slug, true)
    const u = await seed.createUser(db)
    await seed.addMember(db, u, org, { accepted: false })
    assert.equal(await on({ userId: u }, slug), false)
  })
})

test('flag answers are cached for the configured time, then re-read', async () => {
  const db = env.pg
  const u = await seed.createUser(db)
  const slug = 'flag-cached'
  await seed.setGlobalFlag(db, slug, true)
  const cached = await calsync.CalendarSync.connect({ databaseUrl: env.url, flagCacheTtlMs: 300 })
  try {
    assert.equal(await cached.isFeatureEnabled(slug, { userId: u }), false)
    await seed.setUserFlag(db, u, slug, true)
    assert.equal(await cached.isFeatureEnabled(slug, { userId: u }), false, 'served from the in-process cache')
    await new Promise((r) => setTimeout(r, 400))
    assert.equal(await cached.isFeatureEnabled(slug, { userId: u }), true, 'the flip shows after the TTL')
  } finally {
    await cached.close()
  }
})

test('bad flag targets are INVALID_ARGUMENT', async () => {
  await assert.rejects(on({}), { code: 'INVALID_ARGUMENT' })
  await assert.rejects(on({ userId: 1, teamId: 2 }), { code: 'INVALID_ARGUMENT' })
  await assert.rejects(on({ userId: 1 }, ''), { code: 'INVALID_ARGUMENT' })
  await assert.rejects(on({ userId: 'one' }), { code: 'INVALID_ARGUMENT' })
})
