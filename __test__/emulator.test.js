'use strict'
// `npx calsync emulator` serves another process's app: the emulator runs as the CLI does, and this
// process drives it only over HTTP (its /emulator control surface) while calsync syncs from it and
// receives its push notifications, as a developer's own app would.
const test = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const { spawn } = require('node:child_process')
const { freshDatabase, calsync, until } = require('./helpers')
const { startReceiver } = require('../dev/receiver')
const seed = require('../dev/seed')

const CLI = path.join(__dirname, '..', 'cli.js')

/** Starts `calsync emulator --port 0` in a child process; resolves to `{ url, stop() }`. */
function startCliEmulator() {
  const child = spawn(process.execPath, [CLI, 'emulator', '--port', '0'], { stdio: ['ignore', 'pipe', 'inherit'] })
  return new Promise((resolve, reject) => {
    let out = ''
    child.once('exit', (code) => reject(new Error(`the emulator exited (${code}): ${out}`)))
    child.stdout.on('data', (c) => {
      out += c
      const m = /listening on (http:\/\/\S+)/.exec(out)
      if (m) {
        child.removeAllListeners('exit')
        resolve({ url: m[1], stop: () => new Promise((r) => { child.once('exit', r); child.kill('SIGTERM') }) })
      }
    })
  })
}

test('the CLI emulator is driven over HTTP: accounts, calendars, events and faults, with calsync syncing from it and its webhooks', { timeout: 60_000 }, async () => {
  const emu = await startCliEmulator()
  const env = await freshDatabase()
  let sync
  const receiver = await startReceiver(() => sync, { googleOptions: { waitForSync: true } })
  const call = async (method, route, body) => {
    const res = await fetch(emu.url + route, { method, headers: body ? { 'content-type': 'application/json' } : {}, body: body ? JSON.stringify(body) : undefined })
    const text = await res.text()
    return { status: res.status, body: text ? JSON.parse(text) : null }
  }
  try {
    const routes = await call('GET', '/emulator')
    assert.equal(routes.status, 200)
    assert.ok(routes.body.routes.some((r) => r.method === 'POST' && r.path === '/emulator/{provider}/calendars/{id}/events'))

    assert.equal((await call('POST', '/emulator/google/clients', { clientId: 'dev-client', clientSecret: 'dev-secret' })).status, 204)
    const account = await call('POST', '/emulator/google/accounts', { email: 'dev@example.com' })
    assert.equal(account.status, 201)
    assert.equal(account.body.email, 'dev@example.com')
    assert.ok(account.body.key.refresh_token)
    const calId = 'dev@example.com'
    assert.deepEqual((await call('POST', '/emulator/google/calendars', { id: calId, timeZone: 'Europe/Berlin' })).body, { id: calId, timeZone: 'Europe/Berlin' })

    sync = await calsync.CalendarSync.connect({
      databaseUrl: env.url,
      googleApiUrl: `${emu.url}/calendar/v3`,
      googleTokenUrl: `${emu.url}/token`,
      googleClientId: 'dev-client',
      googleClientSecret: 'dev-secret',
      googleWebhookToken: 'dev-webhook-token',
      googleWebhookUrl: receiver.url,
      flagCacheTtlMs: 0,
      syncMinIntervalMs: 0,
      retryBaseDelayMs: 20,
    })
    await seed.setGlobalFlag(env.pg, 'calendar-subscription-cache', true)
    const userId = await seed.createUser(env.pg)
    await seed.setUserFlag(env.pg, userId, 'calendar-subscription-cache', true)
    const credentialId = await seed.createCredential(env.pg, { userId, type: 'google_calendar', key: account.body.key })
    const id = await seed.createSelectedCalendar(env.pg, { userId, externalId: calId, credentialId })
    await sync.subscribe(id)
    const channels = await call('GET', `/emulator/google/calendars/${encodeURIComponent(calId)}/channels`)
    assert.equal(channels.body.items.length, 1)
    assert.ok(channels.body.items[0].address.startsWith(receiver.url))
    assert.equal(channels.body.items[0].token, undefined, 'the channel token is not shown')

    // Tomorrow (UTC), inside the sync window.
    const day = new Date(Date.now() + 86_400_000).toISOString().slice(0, 10)
    const at = (hh) => `${day}T${hh}:00:00.000Z`
    const timeMin = at('00')
    const timeMax = new Date(Date.parse(timeMin) + 86_400_000).toISOString()
    const busy = async () => {
      const r = await sync.getCachedAvailability({ selectedCalendarIds: [id], timeMin, timeMax })
      return r.served.includes(id) ? r.busy.map((b) => [b.start, b.end]) : null
    }
    const created = await call('POST', `/emulator/google/calendars/${encodeURIComponent(calId)}/events`, {
      event: { summary: 'Planning', start: { dateTime: `${day}T10:00:00+01:00` }, end: { dateTime: `${day}T11:00:00+01:00` } },
    })
    assert.equal(created.status, 201)
    // The emulator's notification reaches the webhook route, which syncs: the read sees the event.
    await until('the event in the cache', async () => JSON.stringify(await busy()) === JSON.stringify([[at('09'), at('10')]]))

    const moved = await call('PATCH', `/emulator/google/calendars/${encodeURIComponent(calId)}/events/${created.body.id}`, {
      patch: { start: { dateTime: at('14') }, end: { dateTime: at('15') } },
    })
    assert.equal(moved.status, 200)
    await until('the moved event in the cache', async () => JSON.stringify(await busy()) === JSON.stringify([[at('14'), at('15')]]))
    assert.equal((await call('GET', `/emulator/google/calendars/${encodeURIComponent(calId)}/events`)).body.items.length, 1)

    // A fault injected over HTTP: the next sync fails with the provider's 500s, then recovers.
    assert.equal((await call('POST', '/emulator/faults', { endpoint: 'google.events.list', status: 500, times: 10 })).status, 201)
    await assert.rejects(sync.syncCalendar(id, { full: true }), /PROVIDER_UNAVAILABLE|5\d\d/)
    assert.equal((await call('DELETE', '/emulator/faults')).status, 204)
    assert.equal((await call('DELETE', `/emulator/google/calendars/${encodeURIComponent(calId)}/events/${created.body.id}`)).status, 204)
    await sync.syncCalendar(id)
    assert.deepEqual(await busy(), [])
    const counters = await call('GET', '/emulator/counters')
    assert.ok(counters.body['google.events.list.faulted'] >= 1)

    // Microsoft too, with Graph's own rule: a caller cannot choose iCalUId.
    const ms = await call('POST', '/emulator/microsoft/accounts', {})
    assert.equal(ms.status, 201)
    assert.match(ms.body.email, /@/)
    assert.equal((await call('POST', '/emulator/microsoft/calendars', { id: 'AAMkADdev' })).status, 201)
    const outlookEvent = { subject: 'x', start: { dateTime: `${day}T10:00:00`, timeZone: 'UTC' }, end: { dateTime: `${day}T11:00:00`, timeZone: 'UTC' } }
    assert.equal((await call('POST', '/emulator/microsoft/calendars/AAMkADdev/events', { event: outlookEvent })).status, 201)
    assert.equal((await call('POST', '/emulator/microsoft/calendars/AAMkADdev/events', { event: { ...outlookEvent, iCalUId: 'mine@cal.com' } })).status, 400)
    assert.equal((await call('GET', '/emulator/microsoft/calendars/AAMkADdev/events')).body.items.length, 1)

    // Bad requests are 4xx with a message, never a crash of the emulator.
    assert.equal((await call('POST', '/emulator/google/calendars', {})).status, 400)
    assert.equal((await call('POST', '/emulator/google/calendars/nope/events', { event: {} })).status, 404)
    assert.equal((await call('POST', `/emulator/google/calendars/${encodeURIComponent(calId)}/events`, { event: 'x' })).status, 400)
    assert.equal((await call('PATCH', `/emulator/google/calendars/${encodeURIComponent(calId)}/events/nope`, { patch: {} })).status, 404)
    assert.equal((await call('POST', '/emulator/faults', { endpoint: 'google.events.list', status: -1 })).status, 400)
    assert.equal((await call('POST', '/emulator/clock', { offsetMs: 'soon' })).status, 400)
    const unknown = await call('GET', '/emulator/nothing')
    assert.equal(unknown.status, 404)
    assert.match(unknown.body.error.message, /GET \/emulator lists them/)
    const raw = await fetch(`${emu.url}/emulator/google/calendars`, { method: 'POST', body: '{not json' })
    assert.equal(raw.status, 400)
    assert.equal((await call('GET', '/emulator')).status, 200, 'still serving')
  } finally {
    await sync?.close()
    await receiver.close()
    await env.teardown()
    await emu.stop()
  }
})
