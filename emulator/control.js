'use strict'
// The emulator's HTTP control surface, under /emulator/: what tests do in-process (accounts,
// calendars, events, faults, the clock), for a developer's own app in another process
// (`npx calsync emulator`). JSON in, JSON out; errors are `{ error: { code, message } }`.

const ROUTES = [
  ['GET', '/emulator', 'this list'],
  ['POST', '/emulator/{provider}/clients', '{ clientId, clientSecret }: the token endpoint checks this client from now on'],
  ['POST', '/emulator/{provider}/accounts', '{ email? }: a user who consented; answers { email, key } — key as Cal.com stores it in Credential.key'],
  ['POST', '/emulator/{provider}/calendars', '{ id, timeZone? (google), owner? (microsoft) }: a calendar'],
  ['GET', '/emulator/{provider}/calendars/{id}/events', 'the calendar\'s events as the provider stores them'],
  ['POST', '/emulator/{provider}/calendars/{id}/events', '{ event, notify? }: inserts an event (the provider\'s resource shape); notifies watchers'],
  ['PATCH', '/emulator/{provider}/calendars/{id}/events/{eventId}', '{ patch, notify? }: updates an event; notifies watchers'],
  ['DELETE', '/emulator/{provider}/calendars/{id}/events/{eventId}', 'deletes an event; notifies watchers'],
  ['POST', '/emulator/{provider}/calendars/{id}/expire-cursors', 'the sync tokens (Google) or delta links (Microsoft) of the calendar answer 410 from now on'],
  ['GET', '/emulator/{provider}/calendars/{id}/channels', 'the live push channels (Google) or subscriptions (Microsoft) of the calendar'],
  ['POST', '/emulator/faults', '{ endpoint, status?, times?, skip?, retryAfter?, reason?, latencyMs? }: injects a fault (endpoints such as google.events.list, microsoft.delta)'],
  ['DELETE', '/emulator/faults', 'removes every fault'],
  ['GET', '/emulator/counters', 'request and notification counters'],
  ['POST', '/emulator/clock', '{ offsetMs }: shifts the emulator\'s clock (0: the system clock)'],
]

const fail = (status, message) => ({ status, body: { error: { code: status, message } } })

/** Reads a required string field of the request body, or throws a 400. */
function field(json, name, { optional = false } = {}) {
  const v = json?.[name]
  if (v === undefined && optional) return undefined
  if (typeof v !== 'string' || !v) throw Object.assign(new Error(`"${name}" must be a non-empty string`), { status: 400 })
  return v
}

/** A plain object field of the request body, or a 400. */
function object(json, name) {
  const v = json?.[name]
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw Object.assign(new Error(`"${name}" must be an object`), { status: 400 })
  return v
}

/** Answers a control request (`req.path` under /emulator), or null when the path is not one. */
async function control(host, req) {
  const { method, path } = req
  if (path !== '/emulator' && !path.startsWith('/emulator/')) return null
  try {
    return await route(host, req, method, path)
  } catch (e) {
    if (e.status) return fail(e.status, e.message)
    if (/^no (emulated|event)/.test(e.message)) return fail(404, e.message)
    throw e
  }
}

async function route(host, req, method, path) {
  let json = req.json
  if (json == null && req.body) {
    try {
      json = JSON.parse(req.body) // a body sent without a JSON content type (curl -d) is read too
    } catch {
      return fail(400, 'the body must be JSON')
    }
  }
  json ??= {}
  if (path === '/emulator' && method === 'GET') return { status: 200, body: { routes: ROUTES.map(([m, p, what]) => ({ method: m, path: p, what })) } }
  if (path === '/emulator/counters' && method === 'GET') return { status: 200, body: host.counts }
  if (path === '/emulator/clock' && method === 'POST') {
    if (!Number.isFinite(json.offsetMs)) throw Object.assign(new Error('"offsetMs" must be a number'), { status: 400 })
    host.setClock(json.offsetMs)
    return { status: 200, body: { now: new Date(host.now()).toISOString() } }
  }
  if (path === '/emulator/faults') {
    if (method === 'DELETE') {
      host.clearFaults()
      return { status: 204, body: null }
    }
    if (method === 'POST') {
      const endpoint = field(json, 'endpoint')
      const { status, times, skip, retryAfter, reason, latencyMs, answerDelayMs } = json
      for (const [k, v] of Object.entries({ status, times, skip, retryAfter, latencyMs, answerDelayMs })) {
        if (v !== undefined && !(Number.isInteger(v) && v >= 0)) throw Object.assign(new Error(`"${k}" must be a non-negative integer`), { status: 400 })
      }
      host.inject({ endpoint, status, times, skip, retryAfter, reason, latencyMs, answerDelayMs })
      return { status: 201, body: { endpoint } }
    }
  }
  const m = /^\/emulator\/(google|microsoft)(\/.*)$/.exec(path)
  if (!m) return fail(404, `no control route ${method} ${path}: GET /emulator lists them`)
  const provider = m[1] === 'google' ? host.google : host.microsoft
  const rest = m[2]
  let p
  if (rest === '/clients' && method === 'POST') {
    provider.registerClient(field(json, 'clientId'), field(json, 'clientSecret'))
    return { status: 204, body: null }
  }
  if (rest === '/accounts' && method === 'POST') {
    const email = field(json, 'email', { optional: true })
    const key = provider.addAccount(email ? { email } : {})
    return { status: 201, body: { email: email ?? key.email ?? provider.refreshTokens.get(key.refresh_token)?.email, key } }
  }
  if (rest === '/calendars' && method === 'POST') {
    const id = field(json, 'id')
    const cal = m[1] === 'google'
      ? provider.createCalendar(id, { timeZone: field(json, 'timeZone', { optional: true }) ?? 'UTC' })
      : provider.createCalendar(id, json.owner ? { owner: field(json, 'owner') } : {})
    return { status: 201, body: { id: cal.id, ...(cal.timeZone ? { timeZone: cal.timeZone } : {}) } }
  }
  if ((p = /^\/calendars\/([^/]+)\/(events|expire-cursors|channels)$/.exec(rest))) {
    const id = decodeURIComponent(p[1])
    const cal = provider.calendar(id)
    if (p[2] === 'events' && method === 'GET') return { status: 200, body: { items: [...cal.events.values()] } }
    if (p[2] === 'events' && method === 'POST') {
      const event = await provider.insertEvent(id, object(json, 'event'), { notify: json.notify !== false })
      return { status: 201, body: event }
    }
    if (p[2] === 'expire-cursors' && method === 'POST') {
      if (m[1] === 'google') provider.expireSyncTokens(id)
      else provider.expireDeltaTokens(id)
      return { status: 204, body: null }
    }
    if (p[2] === 'channels' && method === 'GET') {
      // Where each one delivers and until when; never its verification token or clientState.
      const items = m[1] === 'google'
        ? provider.liveChannels(id).map((c) => ({ id: c.id, address: c.address, expiration: new Date(c.expiration).toISOString() }))
        : provider.liveSubscriptions(id).map((x) => ({ id: x.id, notificationUrl: x.notificationUrl, expirationDateTime: x.expirationDateTime }))
      return { status: 200, body: { items } }
    }
  }
  if ((p = /^\/calendars\/([^/]+)\/events\/([^/]+)$/.exec(rest))) {
    const [id, eventId] = [decodeURIComponent(p[1]), decodeURIComponent(p[2])]
    provider.calendar(id)
    if (method === 'PATCH') return { status: 200, body: await provider.updateEvent(id, eventId, object(json, 'patch'), { notify: json.notify !== false }) }
    if (method === 'DELETE') {
      await provider.deleteEvent(id, eventId, { notify: json.notify !== false })
      return { status: 204, body: null }
    }
  }
  return fail(404, `no control route ${method} ${path}: GET /emulator lists them`)
}

module.exports = { control, ROUTES }
