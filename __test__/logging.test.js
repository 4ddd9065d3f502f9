'use strict'
// Logs for the operator (SPEC §13): each failure path logs once, with its code and the calendar or
// provider it concerns, through the host's logger (`logger` option) or, by default, as one JSON
// line on stderr; never a token, secret or event content; identical repeats rate-limited.
const test = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const { spawn } = require('node:child_process')
const { startStack } = require('./stack')

const HOUR = 3600 * 1000
const day0 = Math.ceil(Date.now() / (24 * HOUR)) * 24 * HOUR
const at = (h) => new Date(day0 + h * HOUR).toISOString()

/** A logger with pino's shape that keeps what it is given. */
function recorder() {
  const entries = []
  const logger = {}
  for (const level of ['debug', 'info', 'warn', 'error']) logger[level] = (fields, message) => entries.push({ level, message, ...fields })
  return { logger, entries }
}

let s
let log
test.before(async () => {
  log = recorder()
  s = await startStack({ logger: log.logger, logLevel: 'info' })
})
test.after(async () => s?.close())

const SECRET_FIELDS = ['test-webhook-secret', 'test-ms-client-state', 'test-client-secret', 'test-ms-secret']
/** Every secret of the stack, and every token a credential holds. */
async function secrets() {
  const { rows } = await s.db.query('SELECT key FROM "Credential"')
  const out = [...SECRET_FIELDS]
  for (const { key } of rows) out.push(key.access_token, key.refresh_token)
  return out.filter(Boolean)
}

function entriesWith(code, message) {
  return log.entries.filter((e) => e.code === code && (!message || e.message.includes(message)))
}

test('a forged Google notification, an unknown channel and a forged Graph batch: logged with their codes, counted apart', async () => {
  const headers = (token, channel = 'no-such-channel') => ({
    'x-goog-channel-id': channel, 'x-goog-channel-token': token, 'x-goog-resource-state': 'exists', 'x-goog-resource-id': 'r',
  })
  const forged = await s.sync.handleGoogleWebhook({ headers: headers('guess') })
  assert.equal(forged.status, 403)
  assert.equal(forged.headers['X-Content-Type-Options'], 'nosniff')
  // The shared secret opens channels of the TypeScript era, which calsync does not know: unknown.
  const unknown = await s.sync.handleGoogleWebhook({ headers: headers('test-webhook-secret') })
  assert.equal(unknown.status, 200)
  const ms = await s.sync.handleMicrosoftWebhook({ body: JSON.stringify({ value: [{ subscriptionId: 's', clientState: 'wrong', changeType: 'updated' }] }) })
  assert.equal(ms.status, 403)
  assert.equal(entriesWith('WEBHOOK_FORGED').filter((e) => e.provider === 'google').length, 1)
  assert.equal(entriesWith('WEBHOOK_UNKNOWN').filter((e) => e.provider === 'google').length, 1)
  assert.equal(entriesWith('WEBHOOK_FORGED').filter((e) => e.provider === 'microsoft').length, 1)
  const metrics = await s.sync.metrics()
  const value = (provider, outcome) => Number(new RegExp(`calsync_webhook_notifications_total\\{outcome="${outcome}",provider="${provider}"\\} (\\d+)`).exec(metrics)?.[1])
  assert.equal(value('google', 'forged'), 1)
  assert.equal(value('google', 'unknown'), 1)
  assert.equal(value('microsoft', 'forged'), 1)
  assert.equal(value('microsoft', 'mismatch'), 0, 'known outcomes are exported at 0 from the start')
  // An unauthenticated empty batch is answered without any database work, and logs nothing.
  const before = log.entries.length
  assert.equal((await s.sync.handleMicrosoftWebhook({ body: '{"value":[]}' })).status, 202)
  assert.equal(log.entries.length, before)
})

test('repeated identical warnings are rate-limited (at most one a minute)', async () => {
  const headers = { 'x-goog-channel-id': 'c-repeat', 'x-goog-channel-token': 'guess', 'x-goog-resource-state': 'exists' }
  const before = entriesWith('WEBHOOK_FORGED').length
  for (let i = 0; i < 20; i++) assert.equal((await s.sync.handleGoogleWebhook({ headers })).status, 403)
  assert.equal(entriesWith('WEBHOOK_FORGED').length, before, 'within a minute of the first, repeats are held back')
})

test('a failing sync logs once with its code and calendar; no token, secret or event content anywhere', async () => {
  const user = await s.googleUser()
  const cal = await s.googleCalendar(user)
  await s.emu.google.insertEvent(cal.externalId, { summary: 'Secret board meeting', description: 'confidential', start: { dateTime: at(9) }, end: { dateTime: at(10) } }, { notify: false })
  s.emu.inject({ endpoint: 'google.events.list', status: 500, times: 100 })
  await assert.rejects(s.sync.syncCalendar(cal.id), (e) => e.code === 'PROVIDER_UNAVAILABLE')
  s.emu.clearFaults()
  const failed = log.entries.filter((e) => e.message === 'sync failed' && e.calendar === cal.id)
  assert.equal(failed.length, 1)
  assert.equal(failed[0].code, 'PROVIDER_UNAVAILABLE')
  assert.equal(failed[0].integration, 'google_calendar')
  await s.sync.syncCalendar(cal.id) // and the event's contents, synced now, appear in no entry
  const text = JSON.stringify(log.entries)
  for (const secret of await secrets()) assert.ok(!text.includes(secret), 'a secret in the logs')
  assert.ok(!/Secret board meeting|confidential/.test(text), 'event contents in the logs')
})

test('a refused refresh token: "credential marked invalid" logged once with PROVIDER_AUTH', async () => {
  const user = await s.googleUser()
  const cal = await s.googleCalendar(user)
  await s.db.query(`UPDATE "Credential" SET key = key || '{"expiry_date": 0}' WHERE id = $1`, [user.credentialId])
  s.emu.google.revokeRefreshToken(user.key.refresh_token)
  await assert.rejects(s.sync.syncCalendar(cal.id), (e) => e.code === 'PROVIDER_AUTH')
  await assert.rejects(s.sync.syncCalendar(cal.id), (e) => e.code === 'PROVIDER_AUTH')
  const marked = log.entries.filter((e) => e.message.includes('credential marked invalid') && e.credential_id === user.credentialId)
  assert.equal(marked.length, 1, 'marked once; the next attempt finds the credential invalid')
  assert.equal(marked[0].code, 'PROVIDER_AUTH')
  const text = JSON.stringify(log.entries)
  for (const secret of await secrets()) assert.ok(!text.includes(secret))
})

test('calsync\'s OAuth client refused (PROVIDER_CONFIG): logged once per pause, however many calendars fail', async () => {
  const a = await s.googleUser()
  const b = await s.googleUser()
  const cals = [await s.googleCalendar(a), await s.googleCalendar(b)]
  for (const u of [a, b]) await s.db.query(`UPDATE "Credential" SET key = key || '{"expiry_date": 0}' WHERE id = $1`, [u.credentialId])
  s.emu.google.registerClient('test-client', 'rotated-secret') // the secret was rotated at Google
  try {
    for (const c of cals) await assert.rejects(s.sync.syncCalendar(c.id), (e) => e.code === 'PROVIDER_CONFIG')
  } finally {
    s.emu.google.registerClient('test-client', 'test-client-secret')
  }
  const config = entriesWith('PROVIDER_CONFIG')
  assert.equal(config.length, 1)
  assert.equal(config[0].level, 'error')
  assert.ok(!JSON.stringify(config).includes('rotated-secret') && !JSON.stringify(config).includes('test-client-secret'))
})

test('a channel that cannot be stopped: logged with its code; the sweep retries', async () => {
  const user = await s.googleUser()
  const cal = await s.googleCalendar(user)
  await s.sync.subscribe(cal.id)
  s.emu.inject({ endpoint: 'google.channels.stop', status: 500, times: 100 })
  try {
    await s.sync.unsubscribe(cal.id)
  } finally {
    s.emu.clearFaults()
  }
  const stop = log.entries.filter((e) => e.message.includes('could not stop a channel'))
  assert.equal(stop.length, 1)
  assert.equal(stop[0].code, 'PROVIDER_UNAVAILABLE')
  assert.equal(stop[0].integration, 'google_calendar')
})

test('a logger that throws costs the entry, never the process', async () => {
  const sync = await require('./helpers').calsync.CalendarSync.connect({
    ...s.options,
    logLevel: 'warn',
    logger: { warn() { throw new Error('broken logger') } },
  })
  try {
    const res = await sync.handleGoogleWebhook({ headers: { 'x-goog-channel-id': 'c', 'x-goog-channel-token': 'x', 'x-goog-resource-state': 'exists' } })
    assert.equal(res.status, 403)
    await new Promise((r) => setTimeout(r, 50))
  } finally {
    await sync.close()
  }
  await assert.rejects(require('./helpers').calsync.CalendarSync.connect({ ...s.options, logLevel: 'loud' }), (e) => e.code === 'INVALID_ARGUMENT')
})

/** Runs a forged Google notification in a child process with `env`; returns its stderr. */
function childStderr(env) {
  const script = `
    const { CalendarSync } = require(${JSON.stringify(path.join(__dirname, '..'))})
    ;(async () => {
      const sync = await CalendarSync.connect(${JSON.stringify({ ...s.options, logger: undefined, logLevel: undefined })})
      await sync.handleGoogleWebhook({ headers: { 'x-goog-channel-id': 'c', 'x-goog-channel-token': 'guess', 'x-goog-resource-state': 'exists' } })
      await new Promise((r) => setTimeout(r, 100))
      await sync.close()
    })().catch((e) => { console.error('FAILED', e); process.exit(1) })`
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', script], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] })
    let err = ''
    child.stderr.on('data', (d) => { err += d })
    child.on('error', reject)
    child.on('exit', (code) => (code === 0 ? resolve(err) : reject(new Error(`child exited ${code}: ${err}`))))
  })
}

test('the default: warnings and errors as one JSON line each on stderr; CALSYNC_LOG=off silences it', async () => {
  const err = await childStderr({ CALSYNC_LOG: 'warn' })
  const lines = err.trim().split('\n').filter(Boolean)
  assert.equal(lines.length, 1, err)
  const entry = JSON.parse(lines[0])
  assert.equal(entry.level, 'warn')
  assert.equal(entry.name, 'calsync')
  assert.equal(entry.code, 'WEBHOOK_FORGED')
  assert.equal(entry.provider, 'google')
  assert.ok(entry.time && entry.msg)
  assert.ok(!err.includes('test-webhook-secret'))
  assert.equal(await childStderr({ CALSYNC_LOG: 'off' }), '')
})
