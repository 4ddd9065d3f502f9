'use strict'
const test = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const { execFile } = require('node:child_process')
const { startServer, createDatabase } = require('../dev/postgres')
const seed = require('../dev/seed')
const { Client } = require('pg')

const CLI = path.join(__dirname, '..', 'cli.js')
let server
let db
test.before(async () => {
  server = await startServer()
  db = await createDatabase(server.url, 'calsync_test_cli')
})
test.after(async () => {
  await db?.drop()
  await server?.stop()
})

function cli(args, env = {}) {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { ...process.env, DATABASE_URL: db.url, ...env } }, (err, stdout, stderr) => {
      resolve({ code: err ? err.code : 0, stdout, stderr })
    })
  })
}

test('schema, status, renew, cleanup and sync from the command line', async () => {
  const applied = await cli(['schema'])
  assert.equal(applied.code, 0)
  assert.equal((await cli(['schema'])).code, 0, 'idempotent')
  const pg = new Client({ connectionString: db.url })
  await pg.connect()
  try {
    // The message names every table calsync created.
    const { rows } = await pg.query(`SELECT relname FROM pg_class WHERE relkind = 'r' AND relname LIKE 'CalendarSync%' ORDER BY relname`)
    assert.equal(rows.length, 8)
    for (const { relname } of rows) assert.ok(applied.stdout.includes(relname), `${relname} named in: ${applied.stdout}`)
    const userId = await seed.createUser(pg)
    await seed.createSelectedCalendar(pg, { userId, externalId: 'x@example.com' })
  } finally {
    await pg.end()
  }
  const status = await cli(['status', '--json'])
  assert.equal(status.code, 0, status.stderr)
  assert.deepEqual(JSON.parse(status.stdout), [{ integration: 'google_calendar', health: 'unsubscribed', calendars: 1 }])
  assert.match((await cli(['status'])).stdout, /google_calendar\s+unsubscribed\s+1/)
  const renew = await cli(['renew', '--json'])
  assert.equal(renew.code, 0, renew.stderr)
  assert.equal(JSON.parse(renew.stdout).checked, 1)
  const cleanup = await cli(['cleanup', '--json'])
  assert.equal(JSON.parse(cleanup.stdout).endedEvents, 0)
  const sync = await cli(['sync', 'no-such-row'])
  assert.equal(sync.code, 1)
  assert.match(sync.stderr, /\[NOT_FOUND\]/)
  const verify = await cli(['migrate', 'verify', '--json'])
  assert.equal(verify.code, 0, verify.stderr)
  assert.deepEqual(JSON.parse(verify.stdout), [])
  assert.match((await cli(['migrate', 'verify'])).stdout, /no live legacy cache rows/)
  assert.match((await cli(['migrate', 'verify', '--user', '999999'])).stderr, /\[NOT_FOUND\]/)
  assert.match((await cli(['migrate', 'verify', '--team', 'x'])).stderr, /\[INVALID_ARGUMENT\]/)
  const stage = await cli(['migrate', 'status', '--json'])
  assert.deepEqual(JSON.parse(stage.stdout), { users: 0, writing: 0, readingSql: 0, liveRows: 0, expiredRows: 0, teams: [], divergences: 0, lastDivergences: [] })
  // A team in stage 1 and a difference a shadow read recorded.
  const pg2 = new Client({ connectionString: db.url })
  await pg2.connect()
  try {
    const team = await seed.createTeam(pg2, { name: 'Sales' })
    await seed.setGlobalFlag(pg2, 'calendar-cache-sql-write', true)
    await seed.setTeamFlag(pg2, team, 'calendar-cache-sql-write', true)
    await pg2.query(`INSERT INTO "CalendarSyncDivergence" VALUES ('sc-1', 'missing_block', '2026-12-01 09:00', '2026-12-01 10:00', 'legacy', now(), now())`)
    const text = (await cli(['migrate', 'status'])).stdout
    assert.match(text, new RegExp(`team ${team}: write on, read from SQL off`))
    assert.match(text, /differences recorded by shadow reads \(last 30 days\): 1\n.*missing_block calendar sc-1 2026-12-01T09:00:00.000Z \.\. 2026-12-01T10:00:00.000Z \(served: legacy\)/)
  } finally {
    await pg2.end()
  }
  assert.deepEqual(JSON.parse((await cli(['migrate', 'cleanup', '--json'])).stdout), { deleted: 0 })
  assert.match((await cli(['migrate', 'frob'])).stderr, /\[INVALID_ARGUMENT\]/)
  const bad = await cli(['frobnicate'])
  assert.equal(bad.code, 2)
  const noDb = await cli(['status'], { DATABASE_URL: '' })
  assert.match(noDb.stderr, /\[INVALID_ARGUMENT\]/)
})
