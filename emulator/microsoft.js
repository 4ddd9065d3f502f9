'use strict'
// Microsoft Graph v1.0 as calsync uses it: calendars and events (series with occurrences and
// exceptions, showAs, isAllDay, isCancelled, Windows or IANA time zones), subscriptions with the
// validation handshake against the notification URL and the 10070-minute cap, change and
// lifecycle notifications delivered in batches with clientState, calendarView delta with
// nextLink/deltaLink and @removed, expired delta state (410 syncStateNotFound), getSchedule (the
// oracle), and the token endpoint with rotating refresh tokens.

const crypto = require('node:crypto')
const { expand } = require('./rrule')
const { zonedToUtc, wallClock, mergeSpans } = require('./time')
const WINDOWS = require('../data/windows-zones.json').zones

const DAY = 24 * 3600 * 1000
const MAX_SUBSCRIPTION_MINUTES = 10070

function graphError(status, code, message) {
  return { status, body: { error: { code, message, innerError: { date: new Date().toISOString(), 'request-id': crypto.randomUUID() } } } }
}

const ERRORS = {
  400: (m = 'Invalid request.') => graphError(400, 'InvalidRequest', m),
  401: () => graphError(401, 'InvalidAuthenticationToken', 'Access token has expired or is not yet valid.'),
  403: () => graphError(403, 'ErrorAccessDenied', 'Access is denied. Check credentials and try again.'),
  404: () => graphError(404, 'ResourceNotFound', 'The specified object was not found in the store.'),
  410: () => graphError(410, 'syncStateNotFound', 'The sync state generation is not found or has expired. Perform a full resync.'),
  429: () => graphError(429, 'ApplicationThrottled', 'Application is over its MailboxConcurrency limit.'),
  500: () => graphError(500, 'InternalServerError', 'An internal server error occurred.'),
  503: () => graphError(503, 'ServiceUnavailable', 'The service is temporarily unavailable.'),
  504: () => graphError(504, 'GatewayTimeout', 'The gateway timed out.'),
}

/** The IANA zone for a Graph time zone name (Windows or IANA). */
function iana(tz) {
  if (!tz) return 'UTC'
  return WINDOWS[tz] ?? tz
}

/** `2026-03-01T10:00:00.0000000`: Graph's offset-less dateTime, 7 fractional digits. */
function graphDateTime(ms, tz) {
  const w = wallClock(ms, iana(tz))
  const p = (n, l = 2) => String(n).padStart(l, '0')
  return `${p(w.y, 4)}-${p(w.mo)}-${p(w.d)}T${p(w.h)}:${p(w.mi)}:${p(w.s)}.0000000`
}

/** The zone name Graph gives events whose zone is custom-defined. */
const CUSTOM_ZONE = 'tzone://Microsoft/Custom'

/** The instant of a Graph `{ dateTime, timeZone }`. */
function instant({ dateTime, timeZone }) {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})/.exec(dateTime)
  if (!m) throw new Error(`bad Graph dateTime ${dateTime}`)
  if (/[zZ]|[+-]\d{2}:\d{2}$/.test(dateTime)) return Date.parse(dateTime)
  return zonedToUtc(iana(timeZone), +m[1], +m[2], +m[3], +m[4], +m[5], +m[6])
}

const stamp = (ms) => new Date(ms).toISOString().replace(/[-:.]/g, '')
const changeKey = () => crypto.randomBytes(12).toString('base64')

class MicrosoftEmulator {
  constructor(host) {
    this.host = host
    this.calendars = new Map()
    this.subscriptions = new Map()
    this.accessTokens = new Map()
    this.tokenOwners = new Map() // access token -> the account (email) it was issued to
    this.refreshTokens = new Map()
    this.clients = new Map() // app (client) id -> secret; none registered: any client is accepted
    this.tenantApps = new Map() // app (client) id -> { tenant, secret, domain }: app-only access
    this.appTokens = new Map() // app-only access token -> the domain of the tenant whose users it reaches
    this.pages = new Map()
    this.delivery = { dropNext: 0, duplicateNext: 0, hold: false }
    this.held = []
    this.deliveries = []
    this.tenantId = crypto.randomUUID()
  }

  // ---------------------------------------------------------------- control API (test setup) --

  /** Registers an app (client); from then on the token endpoint checks the client of every request. */
  registerClient(id, secret) {
    this.clients.set(id, secret)
  }

  /** Registers an account; returns a credential key as Cal.com stores it (expiry in seconds). */
  addAccount({ email = `user-${crypto.randomUUID()}@contoso.example`, accessTokenTtlMs = 3600 * 1000 } = {}) {
    const refreshToken = this.issueRefreshToken(email)
    return {
      access_token: this.issueAccessToken(accessTokenTtlMs, email),
      refresh_token: refreshToken,
      expiry_date: Math.floor((this.host.now() + accessTokenTtlMs) / 1000),
      token_type: 'Bearer',
      scope: 'User.Read Calendars.Read Calendars.ReadWrite offline_access',
      email,
    }
  }

  /**
   * An app registered in a tenant with application permission to its users' calendars (what a
   * Cal.com organisation's Outlook delegation credential names). Returns its key as Cal.com stores
   * it in `DelegationCredential.serviceAccountKey`: the client secret is kept as `private_key`.
   */
  addTenantApp({ domain, tenant = crypto.randomUUID() } = {}) {
    const clientId = crypto.randomUUID()
    const secret = crypto.randomBytes(24).toString('base64url')
    this.tenantApps.set(clientId, { tenant, secret, domain })
    return { client_id: clientId, private_key: secret, tenant_id: tenant }
  }

  issueAccessToken(ttlMs = 3600 * 1000, email = null) {
    const token = `eyJ0eXAi.${crypto.randomBytes(24).toString('base64url')}`
    this.accessTokens.set(token, this.host.now() + ttlMs)
    this.tokenOwners.set(token, email)
    return token
  }

  issueRefreshToken(email) {
    const token = `M.C5${crypto.randomBytes(24).toString('base64url')}`
    this.refreshTokens.set(token, { email, used: false, revoked: false })
    return token
  }

  /** Makes a refresh token answer `invalid_grant` from now on. */
  revokeRefreshToken(token) {
    const rt = this.refreshTokens.get(token)
    if (rt) rt.revoked = true
    this.accessTokens.clear()
  }

  createCalendar(id, { owner = crypto.randomUUID() } = {}) {
    if (!this.calendars.has(id)) {
      this.calendars.set(id, { id, owner, events: new Map(), tombstones: new Map(), log: [], seq: 0, syncFloor: 0 })
    }
    return this.calendars.get(id)
  }

  calendar(id) {
    const cal = this.calendars.get(id)
    if (!cal) throw new Error(`no emulated Outlook calendar ${id}`)
    return cal
  }

  /**
   * Inserts an event: `{ subject, start: { dateTime, timeZone }, end, isAllDay, showAs, isCancelled,
   * rrule }` (`rrule`: an RFC 5545 rule the emulator expands into occurrences). Notifies subscribers.
   */
  async insertEvent(calendarId, event, { notify = true } = {}) {
    const cal = this.calendar(calendarId)
    // Graph's iCalUId is read-only: Exchange generates it, and a request that sets it is refused.
    // (So an app cannot mark its own events by iCalUID on Outlook; it keeps the event id instead.)
    if (event.iCalUId !== undefined) throw Object.assign(new Error("Graph refuses a caller-chosen iCalUId: the property is read-only"), { status: 400 })
    const id = event.id ?? `AAMkAD${crypto.randomBytes(18).toString('base64url')}`
    const now = new Date().toISOString()
    const stored = {
      '@odata.etag': `W/"${changeKey()}"`,
      subject: 'event',
      showAs: 'busy',
      isAllDay: false,
      isCancelled: false,
      ...structuredClone(event),
      id,
      type: event.rrule ? 'seriesMaster' : 'singleInstance',
      // Graph reports the zones the event was created in; with Prefer outlook.timezone, start and
      // end are in the requested zone instead.
      originalStartTimeZone: event.start?.timeZone ?? 'UTC',
      originalEndTimeZone: event.end?.timeZone ?? event.start?.timeZone ?? 'UTC',
      isOrganizer: event.isOrganizer ?? true,
      iCalUId: `040000008200E00074C5B7101A82E008${crypto.randomBytes(16).toString('hex').toUpperCase()}`,
      changeKey: changeKey(),
      createdDateTime: now,
      lastModifiedDateTime: now,
    }
    cal.events.set(id, stored)
    await this.changed(cal, id, 'created', notify)
    return structuredClone(stored)
  }

  /** Patches an event or series; occurrences a series no longer has are reported removed. */
  async updateEvent(calendarId, eventId, patch, { notify = true } = {}) {
    const cal = this.calendar(calendarId)
    const ev = cal.events.get(eventId)
    if (!ev) throw new Error(`no event ${eventId}`)
    const horizon = this.host.now() + 2 * 366 * DAY
    const before = ev.rrule ? this.occurrences(cal, ev, horizon) : []
    Object.assign(ev, structuredClone(patch), { changeKey: changeKey(), '@odata.etag': `W/"${changeKey()}"`, lastModifiedDateTime: new Date().toISOString() })
    if (before.length) {
      const now = new Set(this.occurrences(cal, ev, horizon).map((o) => o.id))
      for (const o of before) {
        if (now.has(o.id)) continue
        cal.events.delete(o.id)
        cal.tombstones.set(o.id, true)
        this.log(cal, o.id)
      }
    }
    await this.changed(cal, eventId, 'updated', notify)
    return structuredClone(ev)
  }

  /** Deletes an event (or a whole series): delta reports it `@removed`. */
  async deleteEvent(calendarId, eventId, { notify = true } = {}) {
    const cal = this.calendar(calendarId)
    const ev = cal.events.get(eventId)
    if (!ev) throw new Error(`no event ${eventId}`)
    const gone = ev.rrule ? this.occurrences(cal, ev, this.host.now() + 2 * 366 * DAY).map((o) => o.id) : []
    cal.events.delete(eventId)
    for (const id of [eventId, ...gone]) {
      cal.events.delete(id)
      cal.tombstones.set(id, true)
      this.log(cal, id)
    }
    if (notify) await this.notify(cal, eventId, 'deleted')
  }

  /**
   * Changes one occurrence of a series: `patch` moves or edits it (it becomes an `exception`), or
   * `{ deleted: true }` removes it. `originalStart` is the occurrence's original start instant.
   */
  async updateOccurrence(calendarId, masterId, originalStart, patch, { notify = true } = {}) {
    const cal = this.calendar(calendarId)
    const master = cal.events.get(masterId)
    const occ = this.occurrences(cal, master, this.host.now() + 2 * 366 * DAY).find((o) => o.originalStart === new Date(originalStart).toISOString().replace('.000Z', 'Z'))
    if (!occ) throw new Error(`no occurrence of ${masterId} at ${originalStart}`)
    if (patch.deleted) {
      cal.events.delete(occ.id)
      cal.tombstones.set(occ.id, true)
      this.log(cal, occ.id)
      if (notify) await this.notify(cal, occ.id, 'deleted')
      return null
    }
    const next = { ...occ, ...structuredClone(patch), type: 'exception', changeKey: changeKey(), lastModifiedDateTime: new Date().toISOString() }
    cal.events.set(occ.id, next)
    await this.changed(cal, occ.id, 'updated', notify)
    return structuredClone(next)
  }

  /** Makes every delta link issued so far answer 410 syncStateNotFound. */
  expireDeltaTokens(calendarId) {
    // Tokens issued from now on are valid again, as after a real 410: the next full sync starts over.
    for (const cal of calendarId ? [this.calendar(calendarId)] : this.calendars.values()) cal.syncFloor = ++cal.seq
  }

  log(cal, id) {
    cal.seq++
    cal.log.push({ seq: cal.seq, id })
  }

  async changed(cal, id, changeType, notify) {
    this.log(cal, id)
    cal.tombstones.delete(id)
    if (notify) await this.notify(cal, id, changeType)
  }

  // --------------------------------------------------------------------------- expansion --

  /**
   * An event's instants. An event in a custom zone (`timeZone: 'tzone://Microsoft/Custom'`, which
   * clients such as older Outlooks create) carries the zone's real rules in `customTimeZone` (an
   * IANA name the test picks); Graph never tells them, apart from converting times it is asked to.
   */
  span(ev) {
    const real = (t) => (ev.customTimeZone && t.timeZone === CUSTOM_ZONE ? { ...t, timeZone: ev.customTimeZone } : t)
    return [instant(real(ev.start)), instant(real(ev.end))]
  }

  /** Occurrences (exceptions applied, deleted ones omitted) starting before `limitMs`. */
  occurrences(cal, master, limitMs) {
    const tz = iana(master.start.timeZone)
    const [s, e] = this.span(master)
    const out = []
    for (const t of expand(master.rrule, { startMs: s, tz, limitMs })) {
      const id = `${master.id}_${stamp(t)}`
      if (cal.tombstones.has(id)) continue
      const ex = cal.events.get(id)
      if (ex) {
        out.push(structuredClone(ex))
        continue
      }
      const occ = structuredClone(master)
      delete occ.rrule
      Object.assign(occ, {
        id,
        type: 'occurrence',
        seriesMasterId: master.id,
        originalStart: new Date(t).toISOString().replace('.000Z', 'Z'),
        start: { dateTime: graphDateTime(t, master.start.timeZone), timeZone: master.start.timeZone },
        end: { dateTime: graphDateTime(t + (e - s), master.end.timeZone ?? master.start.timeZone), timeZone: master.end.timeZone ?? master.start.timeZone },
      })
      out.push(occ)
    }
    return out
  }

  /** calendarView: instances overlapping [minMs, maxMs) (series masters expanded, not shown). */
  view(cal, minMs, maxMs) {
    const out = []
    for (const ev of cal.events.values()) {
      if (ev.type === 'occurrence' || ev.type === 'exception') continue // shown through their series
      const items = ev.type === 'seriesMaster' ? this.occurrences(cal, ev, maxMs + DAY) : [structuredClone(ev)]
      for (const it of items) {
        const [s, e] = this.span(it)
        if (s < maxMs && e > minMs) out.push(it)
      }
    }
    return out
  }

  /** The oracle: getSchedule's busy items (not free, not cancelled), merged and clipped. */
  busy(cal, minMs, maxMs, { workingElsewhereIsBusy = true } = {}) {
    const spans = []
    for (const ev of this.view(cal, minMs, maxMs)) {
      if (ev.isCancelled || ev.showAs === 'free' || (ev.showAs === 'workingElsewhere' && !workingElsewhereIsBusy)) continue
      const [s, e] = this.span(ev)
      spans.push([s, e])
    }
    return mergeSpans(spans, minMs, maxMs)
  }

  /** The oracle without HTTP: merged busy intervals as ISO strings. */
  scheduleOf(calendarId, timeMin, timeMax, options) {
    const iso = (ms) => new Date(ms).toISOString().replace('.000Z', 'Z')
    return this.busy(this.calendar(calendarId), Date.parse(timeMin), Date.parse(timeMax), options).map(([s, e]) => ({ start: iso(s), end: iso(e) }))
  }

  /**
   * An instance as Graph sends it, in UTC when the client asked with Prefer outlook.timezone. All-day
   * events are floating dates: Graph sends their local midnights unconverted, labelled with the
   * requested zone ("2026-05-15T00:00:00.0000000", "UTC"), whatever zone the event is in.
   */
  present(ev, utc) {
    const out = structuredClone(ev)
    delete out.rrule
    delete out.customTimeZone
    if (utc && ev.isAllDay) {
      out.start = { dateTime: `${ev.start.dateTime.slice(0, 10)}T00:00:00.0000000`, timeZone: 'UTC' }
      out.end = { dateTime: `${ev.end.dateTime.slice(0, 10)}T00:00:00.0000000`, timeZone: 'UTC' }
    } else if (utc) {
      const [s, e] = this.span(ev)
      out.start = { dateTime: graphDateTime(s, 'UTC'), timeZone: 'UTC' }
      out.end = { dateTime: graphDateTime(e, 'UTC'), timeZone: 'UTC' }
    }
    out['@odata.type'] = '#microsoft.graph.event'
    return out
  }

  // -------------------------------------------------------------------------------- HTTP --

  authorized(req) {
    const m = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')
    const exp = m && this.accessTokens.get(m[1])
    return exp && exp > this.host.now()
  }

  async handle(req) {
    const { method, path } = req
    if (method === 'POST' && /^\/[^/]+\/oauth2\/v2\.0\/token$/.test(path)) return this.token(req)
    if (!path.startsWith('/v1.0/')) return null
    const rest = path.slice('/v1.0'.length)
    let m
    if (method === 'GET' && (m = /^\/(me|users\/[^/]+)\/calendars\/([^/]+)\/calendarView\/delta$/.exec(rest))) {
      return this.guard(req, 'microsoft.delta', () => this.principalError(req, m[1]) ?? this.delta(decodeURIComponent(m[2]), req, m[1]))
    }
    if (method === 'GET' && (m = /^\/(me|users\/[^/]+)\/calendars\/([^/]+)\/events\/([^/]+)$/.exec(rest))) {
      return this.guard(req, 'microsoft.events.get', () => this.principalError(req, m[1]) ?? this.getEvent(decodeURIComponent(m[2]), decodeURIComponent(m[3]), req))
    }
    if (method === 'GET' && rest === '/subscriptions') return this.guard(req, 'microsoft.subscriptions.list', () => this.listSubscriptions(req))
    if (method === 'POST' && rest === '/subscriptions') return this.guard(req, 'microsoft.subscriptions.create', () => this.subscribe(req))
    if ((m = /^\/subscriptions\/([^/]+)$/.exec(rest))) {
      if (method === 'PATCH') return this.guard(req, 'microsoft.subscriptions.update', () => this.renew(decodeURIComponent(m[1]), req))
      if (method === 'DELETE') return this.guard(req, 'microsoft.subscriptions.delete', () => this.unsubscribe(decodeURIComponent(m[1])))
    }
    if (method === 'POST' && rest === '/me/calendar/getSchedule') return this.guard(req, 'microsoft.getSchedule', () => this.getSchedule(req))
    return ERRORS[404]()
  }

  async guard(req, endpoint, fn) {
    const fault = await this.host.fault(endpoint, req)
    if (fault) return fault
    if (!this.authorized(req)) return ERRORS[401]()
    const out = await fn()
    await this.host.answerDelay(endpoint)
    return out
  }

  faultResponse(status) {
    return (ERRORS[status] ?? (() => graphError(status, 'UnknownError', 'Error')))()
  }

  async token(req) {
    const fault = await this.host.fault('microsoft.token', req)
    if (fault) return fault
    const form = new URLSearchParams(req.body)
    const invalid = {
      status: 400,
      body: { error: 'invalid_grant', error_description: "AADSTS70000: The provided value for the 'refresh_token' is not valid.", error_codes: [70000], timestamp: new Date().toISOString(), trace_id: crypto.randomUUID(), correlation_id: crypto.randomUUID() },
    }
    this.host.count('microsoft.token.requests')
    if (form.get('grant_type') === 'client_credentials') return this.appToken(form, req)
    if (form.get('grant_type') !== 'refresh_token') return { status: 400, body: { error: 'unsupported_grant_type', error_description: 'AADSTS70003' } }
    // Entra ID checks the app first: unknown → 400 unauthorized_client (AADSTS700016), wrong secret
    // → 401 invalid_client (AADSTS7000215).
    const clientId = form.get('client_id') ?? ''
    const aad = (status, error, code, text) => ({
      status,
      body: { error, error_description: `AADSTS${code}: ${text}`, error_codes: [code], timestamp: new Date().toISOString(), trace_id: crypto.randomUUID(), correlation_id: crypto.randomUUID() },
    })
    if (this.clients.size > 0 && !this.clients.has(clientId)) {
      return aad(400, 'unauthorized_client', 700016, `Application with identifier '${clientId}' was not found in the directory.`)
    }
    if (this.clients.size > 0 && this.clients.get(clientId) !== form.get('client_secret')) {
      return aad(401, 'invalid_client', 7000215, 'Invalid client secret provided.')
    }
    const old = form.get('refresh_token') ?? ''
    const rt = this.refreshTokens.get(old)
    if (!rt || rt.revoked || rt.used) return invalid
    // Refresh tokens rotate: the one just used stops working, the new one must be stored.
    rt.used = true
    const ttl = 3599
    return {
      status: 200,
      body: { token_type: 'Bearer', scope: 'User.Read Calendars.Read Calendars.ReadWrite', expires_in: ttl, ext_expires_in: ttl, access_token: this.issueAccessToken(ttl * 1000, rt.email), refresh_token: this.issueRefreshToken(rt.email) },
    }
  }

  /**
   * The client credentials grant at a tenant's own authority (`/{tenant}/oauth2/v2.0/token`; the
   * `common` authority cannot issue app-only tokens): the app must be registered in that tenant
   * with that secret, and ask for the `.default` scope.
   */
  appToken(form, req) {
    this.host.count('microsoft.token.app')
    const aad = (status, error, code, text) => ({
      status,
      body: { error, error_description: `AADSTS${code}: ${text}`, error_codes: [code], timestamp: new Date().toISOString(), trace_id: crypto.randomUUID(), correlation_id: crypto.randomUUID() },
    })
    const tenant = req.path.split('/')[1]
    const clientId = form.get('client_id') ?? ''
    const app = this.tenantApps.get(clientId)
    if (tenant === 'common' || tenant === 'organizations') {
      return aad(400, 'invalid_request', 900023, "Specified tenant identifier 'common' is neither a valid DNS name, nor a valid external domain.")
    }
    if (!app || app.tenant !== tenant) {
      return aad(400, 'unauthorized_client', 700016, `Application with identifier '${clientId}' was not found in the directory '${tenant}'.`)
    }
    if (form.get('client_secret') !== app.secret) return aad(401, 'invalid_client', 7000215, 'Invalid client secret provided.')
    if (form.get('scope') !== 'https://graph.microsoft.com/.default') {
      return aad(400, 'invalid_scope', 1002012, `The provided value for scope ${form.get('scope')} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier.`)
    }
    const ttl = 3599
    const token = this.issueAccessToken(ttl * 1000, `app:${clientId}`)
    this.appTokens.set(token, app.domain)
    return { status: 200, body: { token_type: 'Bearer', expires_in: ttl, ext_expires_in: ttl, access_token: token } }
  }

  /**
   * Whose calendars a path names, checked against the token: `me` needs a user's delegated token
   * (Graph refuses `/me` with an app-only one); `users/{upn}` with an app token must be a user of
   * the app's tenant. Returns an error response, or null when allowed.
   */
  principalError(req, principal) {
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1]
    const appDomain = this.appTokens.get(token)
    if (principal.toLowerCase() === 'me') {
      return appDomain ? graphError(400, 'BadRequest', '/me request is only valid with delegated authentication flow.') : null
    }
    const upn = decodeURIComponent(principal.slice('users/'.length))
    if (appDomain && !upn.toLowerCase().endsWith(`@${appDomain}`)) return graphError(404, 'ErrorInvalidUser', `The requested user '${upn}' is invalid.`)
    return null
  }

  prefers(req, name) {
    const prefer = String(req.headers.prefer ?? '')
    if (name === 'utc') return /outlook\.timezone\s*=\s*"?UTC"?/i.test(prefer)
    const m = /odata\.maxpagesize\s*=\s*(\d+)/i.exec(prefer)
    return m ? Math.min(Math.max(parseInt(m[1], 10), 1), 1000) : 100
  }

  deltaUrl(cal, params, principal = 'me') {
    return `${this.host.url}/v1.0/${principal}/calendars/${encodeURIComponent(cal.id)}/calendarView/delta?${new URLSearchParams(params)}`
  }

  delta(calendarId, req, principal = 'me') {
    const cal = this.calendars.get(calendarId)
    if (!cal) return ERRORS[404]()
    const q = req.query
    const utc = this.prefers(req, 'utc')
    const pageSize = this.prefers(req, 'pagesize')
    if (q.has('$skiptoken')) {
      const snap = this.pages.get(q.get('$skiptoken'))
      if (!snap) return ERRORS[400]('Invalid skip token.')
      this.pages.delete(q.get('$skiptoken'))
      return this.page(cal, snap.items, snap.offset, pageSize, snap.token, principal)
    }
    this.host.count('microsoft.delta.sequence')
    let items
    let window
    if (q.has('$deltatoken')) {
      let tok
      try {
        tok = JSON.parse(Buffer.from(q.get('$deltatoken'), 'base64url').toString())
      } catch {
        return graphError(400, 'InvalidDeltaToken', 'The delta token is invalid.')
      }
      if (tok.cal !== cal.id) return graphError(400, 'InvalidDeltaToken', 'The delta token is invalid.')
      if (tok.seq < cal.syncFloor) return ERRORS[410]()
      window = tok.window
      items = this.changesSince(cal, tok.seq, window, utc)
    } else {
      const minMs = Date.parse(q.get('startDateTime'))
      const maxMs = Date.parse(q.get('endDateTime'))
      if (Number.isNaN(minMs) || Number.isNaN(maxMs)) return ERRORS[400]('This request requires a time window specified by the query string parameters StartDateTime and EndDateTime.')
      window = [minMs, maxMs]
      items = this.view(cal, minMs, maxMs).map((ev) => this.present(ev, utc))
    }
    const token = Buffer.from(JSON.stringify({ cal: cal.id, seq: cal.seq, window })).toString('base64url')
    return this.page(cal, items, 0, pageSize, token, principal)
  }

  /** One event (an occurrence of a series too) as it stands; 404 once deleted. */
  getEvent(calendarId, eventId, req) {
    const cal = this.calendars.get(calendarId)
    if (!cal) return ERRORS[404]()
    let ev = cal.events.get(eventId)
    if (!ev) {
      for (const master of cal.events.values()) {
        if (master.type !== 'seriesMaster' || !eventId.startsWith(master.id)) continue
        ev = this.occurrences(cal, master, this.host.now() + 2 * 366 * DAY).find((o) => o.id === eventId)
        if (ev) break
      }
    }
    if (!ev || ev.deleted) return graphError(404, 'ErrorItemNotFound', 'The specified object was not found in the store.')
    return { status: 200, body: this.present(ev, this.prefers(req, 'utc')) }
  }

  changesSince(cal, seq, [minMs, maxMs], utc) {
    const ids = new Set(cal.log.filter((c) => c.seq > seq).map((c) => c.id))
    const removed = (id, reason = 'deleted') => ({ '@odata.type': '#microsoft.graph.event', id, '@removed': { reason } })
    const out = []
    for (const id of ids) {
      const ev = cal.events.get(id)
      if (!ev) {
        if (cal.tombstones.has(id)) out.push(removed(id))
        continue
      }
      const items = ev.type === 'seriesMaster' ? this.occurrences(cal, ev, maxMs + DAY) : [ev]
      for (const it of items) {
        const [s, e] = this.span(it)
        out.push(s < maxMs && e > minMs ? this.present(it, utc) : removed(it.id, 'changed'))
      }
    }
    return out
  }

  page(cal, items, offset, pageSize, token, principal = 'me') {
    const body = { '@odata.context': `${this.host.url}/v1.0/$metadata#Collection(event)`, value: items.slice(offset, offset + pageSize) }
    if (offset + pageSize < items.length) {
      const skip = crypto.randomBytes(18).toString('base64url')
      this.pages.set(skip, { items, offset: offset + pageSize, token })
      body['@odata.nextLink'] = this.deltaUrl(cal, { $skiptoken: skip }, principal)
    } else {
      body['@odata.deltaLink'] = this.deltaUrl(cal, { $deltatoken: token }, principal)
    }
    return { status: 200, body }
  }

  checkExpiration(value) {
    const exp = Date.parse(value)
    if (Number.isNaN(exp)) return ERRORS[400]('Invalid expirationDateTime.')
    if (exp > this.host.now() + MAX_SUBSCRIPTION_MINUTES * 60000 + 60000) {
      return ERRORS[400](`Subscription expiration can only be ${MAX_SUBSCRIPTION_MINUTES} minutes in the future.`)
    }
    if (exp < this.host.now()) return ERRORS[400]('Subscription expiration must be in the future.')
    return null
  }

  /** Graph's handshake: POST ?validationToken=… and expect the token back as text/plain within 10 s. */
  async validate(url) {
    const token = `Validation: Testing client application reachability for subscription Request-Id: ${crypto.randomUUID()}`
    const sep = url.includes('?') ? '&' : '?'
    try {
      const res = await fetch(`${url}${sep}validationToken=${encodeURIComponent(token)}`, {
        method: 'POST', headers: { 'Content-Type': 'text/plain; charset=utf-8' }, body: '', signal: AbortSignal.timeout(10_000),
      })
      const body = await res.text()
      const ok = res.status === 200 && body === token && /^text\/plain/.test(res.headers.get('content-type') ?? '')
      this.host.count(ok ? 'microsoft.validation.passed' : 'microsoft.validation.failed')
      return ok
    } catch {
      this.host.count('microsoft.validation.failed')
      return false
    }
  }

  async subscribe(req) {
    const b = req.json ?? {}
    const m = /^\/?(me|users\/[^/]+)\/calendars\/([^/]+)\/events$/i.exec(b.resource ?? '')
    if (!m || !this.calendars.has(decodeURIComponent(m[2]))) return ERRORS[400]('Resource not found or not supported.')
    const refused = this.principalError(req, m[1])
    if (refused) return refused
    if (typeof b.notificationUrl !== 'string' || typeof b.changeType !== 'string') return ERRORS[400]('Invalid subscription.')
    const bad = this.checkExpiration(b.expirationDateTime)
    if (bad) return bad
    if (b.clientState && b.clientState.length > 128) return ERRORS[400]('clientState must be at most 128 characters.')
    for (const url of [b.notificationUrl, b.lifecycleNotificationUrl].filter(Boolean)) {
      if (!(await this.validate(url))) {
        return ERRORS[400]('Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request.')
      }
    }
    const sub = {
      id: crypto.randomUUID(), resource: b.resource, calendarId: decodeURIComponent(m[2]), applicationId: crypto.randomUUID(),
      changeType: b.changeType, clientState: b.clientState ?? null, notificationUrl: b.notificationUrl,
      lifecycleNotificationUrl: b.lifecycleNotificationUrl ?? null, expirationDateTime: new Date(Date.parse(b.expirationDateTime)).toISOString(),
      creatorId: crypto.randomUUID(), owner: this.ownerOf(req), includeResourceData: false, latestSupportedTlsVersion: 'v1_2', deleted: false,
    }
    this.subscriptions.set(sub.id, sub)
    return { status: 201, body: this.subscriptionBody(sub) }
  }

  ownerOf(req) {
    return this.tokenOwners.get(/^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1]) ?? null
  }

  /**
   * GET /subscriptions: with delegated permissions Graph lists the subscriptions the app created
   * for the signed-in user (paged like every Graph collection; here in pages of 100).
   */
  listSubscriptions(req) {
    const owner = this.ownerOf(req)
    const mine = [...this.subscriptions.values()].filter((s) => !s.deleted && s.owner === owner)
    const skip = parseInt(req.query.get('$skiptoken') ?? '0', 10) || 0
    const body = { '@odata.context': `${this.host.url}/v1.0/$metadata#subscriptions`, value: mine.slice(skip, skip + 100).map((s) => this.subscriptionBody(s)) }
    for (const v of body.value) delete v['@odata.context']
    if (skip + 100 < mine.length) body['@odata.nextLink'] = `${this.host.url}/v1.0/subscriptions?$skiptoken=${skip + 100}`
    return { status: 200, body }
  }

  subscriptionBody(sub) {
    const { deleted, calendarId, owner, ...rest } = sub
    return { '@odata.context': `${this.host.url}/v1.0/$metadata#subscriptions/$entity`, ...rest }
  }

  renew(id, req) {
    const sub = this.subscriptions.get(id)
    // Graph deletes a subscription once it expires: renewing it then is a 404, as for a removed one.
    if (!sub || sub.deleted || Date.parse(sub.expirationDateTime) <= this.host.now()) return ERRORS[404]()
    const bad = this.checkExpiration(req.json?.expirationDateTime)
    if (bad) return bad
    sub.expirationDateTime = new Date(Date.parse(req.json.expirationDateTime)).toISOString()
    return { status: 200, body: this.subscriptionBody(sub) }
  }

  unsubscribe(id) {
    const sub = this.subscriptions.get(id)
    if (!sub || sub.deleted) return ERRORS[404]()
    sub.deleted = true
    return { status: 204, body: null }
  }

  getSchedule(req) {
    const b = req.json ?? {}
    const minMs = instant(b.startTime ?? {})
    const maxMs = instant(b.endTime ?? {})
    if (!Array.isArray(b.schedules)) return ERRORS[400]()
    const value = b.schedules.map((id) => {
      const cal = this.calendars.get(id)
      if (!cal) return { scheduleId: id, error: { message: 'The specified object was not found in the store.', responseCode: 'ErrorMailRecipientNotFound' } }
      const items = this.view(cal, minMs, maxMs).filter((ev) => !ev.isCancelled && ev.showAs !== 'free').map((ev) => {
        const [s, e] = this.span(ev)
        return { isPrivate: false, status: ev.showAs, subject: ev.subject, start: { dateTime: graphDateTime(s, 'UTC'), timeZone: 'UTC' }, end: { dateTime: graphDateTime(e, 'UTC'), timeZone: 'UTC' } }
      })
      return { scheduleId: id, availabilityView: '', scheduleItems: items, workingHours: null }
    })
    return { status: 200, body: { '@odata.context': `${this.host.url}/v1.0/$metadata#Collection(microsoft.graph.scheduleInformation)`, value } }
  }

  // ----------------------------------------------------------------------- notifications --

  liveSubscriptions(calendarId) {
    const now = this.host.now()
    return [...this.subscriptions.values()].filter((s) => s.calendarId === calendarId && !s.deleted && Date.parse(s.expirationDateTime) > now)
  }

  async notify(cal, id, changeType) {
    const items = this.liveSubscriptions(cal.id).map((sub) => ({
      subscriptionId: sub.id,
      subscriptionExpirationDateTime: sub.expirationDateTime,
      changeType,
      resource: `Users/${cal.owner}/Events/${id}`,
      resourceData: { '@odata.type': '#Microsoft.Graph.Event', '@odata.id': `Users/${cal.owner}/Events/${id}`, '@odata.etag': `W/"${changeKey()}"`, id },
      clientState: sub.clientState,
      tenantId: this.tenantId,
      _url: sub.notificationUrl,
    }))
    await Promise.all(items.map((item) => this.deliver(item)))
  }

  async deliver(item) {
    if (this.delivery.dropNext > 0) {
      this.delivery.dropNext--
      this.host.count('microsoft.notifications.dropped')
      return
    }
    const copies = this.delivery.duplicateNext > 0 ? (this.delivery.duplicateNext--, 2) : 1
    for (let i = 0; i < copies; i++) {
      if (this.delivery.hold) this.held.push(item)
      else await this.post(item._url, [item])
    }
  }

  /** Sends held notifications as one batch per notification URL ('fifo', 'reverse' or 'shuffle'). */
  async release(order = 'fifo') {
    const items = this.held.splice(0)
    if (order === 'reverse') items.reverse()
    if (order === 'shuffle') items.sort(() => Math.random() - 0.5)
    this.delivery.hold = false
    const byUrl = new Map()
    for (const it of items) byUrl.set(it._url, [...(byUrl.get(it._url) ?? []), it])
    for (const [url, batch] of byUrl) await this.post(url, batch)
  }

  /** Sends a lifecycle event (`reauthorizationRequired`, `subscriptionRemoved`, `missed`). */
  async lifecycle(subscriptionId, lifecycleEvent) {
    const sub = this.subscriptions.get(subscriptionId)
    if (!sub) throw new Error(`no subscription ${subscriptionId}`)
    if (lifecycleEvent === 'subscriptionRemoved') sub.deleted = true
    const url = sub.lifecycleNotificationUrl ?? sub.notificationUrl
    return this.post(url, [{ subscriptionId: sub.id, subscriptionExpirationDateTime: sub.expirationDateTime, tenantId: this.tenantId, clientState: sub.clientState, lifecycleEvent }])
  }

  async post(url, items, attempt = 0) {
    const value = items.map(({ _url, ...rest }) => rest)
    this.host.count('microsoft.notifications.sent', value.length)
    let status = 0
    const started = this.host.now()
    try {
      const res = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ value }) })
      status = res.status
      await res.arrayBuffer()
    } catch {
      status = 0
    }
    this.deliveries.push({ status, items: value.length, ms: this.host.now() - started })
    // Graph retries a delivery that failed or was answered 5xx, with exponential backoff (for
    // hours; here scaled down like Google's).
    if (status === 0 || status >= 500) this.host.retryLater('microsoft', attempt, () => this.post(url, items, attempt + 1))
    return status
  }
}

module.exports = { MicrosoftEmulator, iana, graphDateTime }
