'use strict'
// Google Calendar v3 as calsync uses it: events (recurring series expanded with singleEvents=true,
// exceptions, all-day events, attendees, transparency, eventType), events.list with paging and sync
// tokens (410 fullSyncRequired), events.watch / channels.stop with push notifications delivered to
// the channel address, freeBusy (the oracle tests compare against), and the OAuth token endpoint.

const crypto = require('node:crypto')
const { expand } = require('./rrule')
const { formatInZone, zonedToUtc, parseDate, addDays, dateString, mergeSpans } = require('./time')

const DAY = 24 * 3600 * 1000
const HORIZON_PAST = 366 * DAY
const HORIZON_FUTURE = 2 * 366 * DAY

function googleError(status, reason, message, domain = 'global') {
  return { status, body: { error: { errors: [{ domain, reason, message }], code: status, message } } }
}

const ERRORS = {
  400: (m = 'Bad Request') => googleError(400, 'badRequest', m),
  401: () => ({
    status: 401,
    body: {
      error: {
        code: 401,
        message: 'Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.',
        errors: [{ message: 'Invalid Credentials', domain: 'global', reason: 'authError', location: 'Authorization', locationType: 'header' }],
        status: 'UNAUTHENTICATED',
      },
    },
  }),
  403: (reason = 'rateLimitExceeded') =>
    googleError(403, reason, reason === 'userRateLimitExceeded' ? 'User Rate Limit Exceeded' : 'Rate Limit Exceeded', 'usageLimits'),
  404: () => googleError(404, 'notFound', 'Not Found'),
  410: () => googleError(410, 'fullSyncRequired', 'Sync token is no longer valid, a full sync is required.'),
  429: () => googleError(429, 'rateLimitExceeded', 'Rate Limit Exceeded', 'usageLimits'),
  500: () => googleError(500, 'backendError', 'Backend Error'),
  502: () => googleError(502, 'backendError', 'Bad Gateway'),
  503: () => googleError(503, 'backendError', 'The service is currently unavailable.'),
}

const etag = () => `"${Date.now()}${crypto.randomInt(1e6)}"`
/**
 * A deleted event as incremental syncs report it: Google guarantees only `id` (and, for an
 * occurrence, `recurringEventId` / `originalStartTime`) on cancelled events, and in practice sends
 * little more — no iCalUID, no times. Clients must match deletions by id.
 */
function tombstone(ev) {
  if (ev.status !== 'cancelled') return ev
  const out = { kind: 'calendar#event', etag: ev.etag, id: ev.id, status: 'cancelled' }
  if (ev.recurringEventId) Object.assign(out, { recurringEventId: ev.recurringEventId, originalStartTime: ev.originalStartTime })
  return out
}
const rfc3339 = (ms) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, '.000Z')
const idStamp = (ms) => new Date(ms).toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '')

class GoogleEmulator {
  constructor(host) {
    this.host = host
    this.calendars = new Map()
    this.channels = new Map()
    this.accessTokens = new Map() // token -> expiry ms
    this.refreshTokens = new Map() // token -> { revoked, email, clientId }
    this.clients = new Map() // OAuth client id -> secret; none registered: any client is accepted
    this.serviceAccounts = new Map() // client_email -> { publicKey, domain, delegated }
    this.pages = new Map()
    this.tokenEpoch = 0
    this.delivery = { dropNext: 0, duplicateNext: 0, delayMs: 0, hold: false }
    this.held = []
    this.deliveries = []
  }

  // ---------------------------------------------------------------- control API (test setup) --

  /** Registers an OAuth client; from then on the token endpoint checks the client of every request. */
  registerClient(id, secret) {
    this.clients.set(id, secret)
  }

  /** Registers an account; returns a credential key as Cal.com stores it. */
  addAccount({ email = `user-${crypto.randomUUID()}@example.com`, accessTokenTtlMs = 3600 * 1000 } = {}) {
    const refreshToken = `1//rt-${crypto.randomBytes(12).toString('hex')}`
    // A grant belongs to the client the user consented to (the first one registered).
    this.refreshTokens.set(refreshToken, { revoked: false, email, clientId: this.clients.keys().next().value })
    const accessToken = this.issueAccessToken(accessTokenTtlMs)
    return {
      access_token: accessToken,
      refresh_token: refreshToken,
      expiry_date: this.host.now() + accessTokenTtlMs,
      scope: 'https://www.googleapis.com/auth/calendar.readonly https://www.googleapis.com/auth/calendar.events',
      token_type: 'Bearer',
    }
  }

  /**
   * A Workspace service account allowed domain-wide delegation for `domain` (unless `delegated` is
   * false: the admin never granted it). Returns its key as Cal.com stores it in
   * `DelegationCredential.serviceAccountKey`; the emulator keeps only the public half, and verifies
   * the JWT bearer grants signed with the private one.
   */
  addServiceAccount({ domain, delegated = true } = {}) {
    const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 })
    const clientId = String(crypto.randomInt(1e9, 1e10))
    const clientEmail = `calsync-${clientId}@project.iam.gserviceaccount.com`
    this.serviceAccounts.set(clientEmail, { publicKey, domain, delegated })
    return { type: 'service_account', client_email: clientEmail, client_id: clientId, private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }) }
  }

  /** Withdraws a service account's domain-wide delegation (the admin removed it). */
  revokeDelegation(clientEmail) {
    const sa = this.serviceAccounts.get(clientEmail)
    if (sa) sa.delegated = false
  }

  issueAccessToken(ttlMs = 3600 * 1000) {
    const token = `ya29.${crypto.randomBytes(16).toString('hex')}`
    this.accessTokens.set(token, this.host.now() + ttlMs)
    return token
  }

  /** Makes a refresh token answer `invalid_grant` from now on. */
  revokeRefreshToken(token) {
    const rt = this.refreshTokens.get(token)
    if (rt) rt.revoked = true
    for (const t of this.accessTokens.keys()) this.accessTokens.delete(t)
  }

  createCalendar(id, { timeZone = 'UTC' } = {}) {
    if (!this.calendars.has(id)) {
      this.calendars.set(id, { id, timeZone, events: new Map(), tombstones: new Map(), log: [], seq: 0, resourceId: crypto.randomBytes(14).toString('base64url'), syncFloor: 0 })
    }
    return this.calendars.get(id)
  }

  calendar(id) {
    const cal = this.calendars.get(id)
    if (!cal) throw new Error(`no emulated Google calendar ${id}`)
    return cal
  }

  /** Inserts an event (Google's resource shape); returns it. Notifies watchers. */
  async insertEvent(calendarId, event, { notify = true } = {}) {
    const cal = this.calendar(calendarId)
    const now = this.host.now()
    const id = event.id ?? crypto.randomBytes(13).toString('hex')
    const stored = {
      kind: 'calendar#event',
      status: 'confirmed',
      ...structuredClone(event),
      id,
      etag: etag(),
      iCalUID: event.iCalUID ?? `${id}@google.com`,
      // Google names the organizer on every event; `self` when it is the calendar's owner.
      organizer: event.organizer ?? { email: calendarId, self: true },
      sequence: event.sequence ?? 0,
      created: rfc3339(now),
      updated: rfc3339(now),
    }
    cal.events.set(id, stored)
    this.changed(cal, id)
    if (notify) await this.notifyCalendar(cal)
    return structuredClone(stored)
  }

  /** Patches an event (or a recurring exception); bumps sequence and etag. Notifies watchers. */
  async updateEvent(calendarId, eventId, patch, { notify = true } = {}) {
    const cal = this.calendar(calendarId)
    const ev = cal.events.get(eventId)
    if (!ev) throw new Error(`no event ${eventId}`)
    const horizon = this.host.now() + HORIZON_FUTURE
    const before = ev.recurrence ? this.occurrences(cal, ev, horizon) : []
    Object.assign(ev, structuredClone(patch), { etag: etag(), sequence: ev.sequence + 1, updated: rfc3339(this.host.now()) })
    this.changed(cal, eventId)
    // Occurrences a series no longer has (its times or rule changed) are reported as cancelled.
    if (before.length) {
      const now = new Set(ev.recurrence ? this.occurrences(cal, ev, horizon).map((i) => i.id) : [])
      for (const inst of before) {
        if (now.has(inst.id)) continue
        cal.events.delete(inst.id) // an exception of an occurrence that no longer exists goes with it
        cal.tombstones.set(inst.id, { kind: 'calendar#event', etag: etag(), id: inst.id, status: 'cancelled', recurringEventId: ev.id, originalStartTime: inst.originalStartTime })
        this.changed(cal, inst.id)
      }
    }
    if (notify) await this.notifyCalendar(cal)
    return structuredClone(ev)
  }

  /** Deletes an event: it stays as a `cancelled` tombstone that incremental syncs report. */
  async deleteEvent(calendarId, eventId, { notify = true } = {}) {
    return this.updateEvent(calendarId, eventId, { status: 'cancelled' }, { notify })
  }

  /**
   * Modifies one occurrence of a recurring series (an exception): `patch` may move it, change its
   * fields, or cancel it (`{ status: 'cancelled' }`). `originalStart` is the occurrence's start
   * (ISO instant, or `YYYY-MM-DD` for all-day series).
   */
  async updateInstance(calendarId, masterId, originalStart, patch, { notify = true } = {}) {
    const cal = this.calendar(calendarId)
    const master = cal.events.get(masterId)
    if (!master) throw new Error(`no event ${masterId}`)
    const inst = this.instanceAt(cal, master, originalStart)
    const existing = cal.events.get(inst.id)
    const base = existing ?? { ...inst, created: master.created }
    const next = { ...base, ...structuredClone(patch), etag: etag(), sequence: (base.sequence ?? 0) + 1, updated: rfc3339(this.host.now()) }
    delete next.recurrence
    cal.events.set(inst.id, next)
    this.changed(cal, inst.id)
    if (notify) await this.notifyCalendar(cal)
    return structuredClone(next)
  }

  /** Makes every sync token issued so far answer 410 `fullSyncRequired`. */
  expireSyncTokens(calendarId) {
    // Tokens issued from now on are valid again, as after a real 410: the next full sync starts over.
    for (const cal of calendarId ? [this.calendar(calendarId)] : this.calendars.values()) cal.syncFloor = ++cal.seq
  }

  changed(cal, id) {
    cal.seq++
    cal.log.push({ seq: cal.seq, id })
  }

  // --------------------------------------------------------------------------- expansion --

  seriesZone(cal, ev) {
    return ev.start?.timeZone || cal.timeZone
  }

  /** [startMs, endMs, allDay] of an event as stored. */
  span(cal, ev) {
    if (ev.start?.date) {
      const tz = cal.timeZone
      const s = parseDate(ev.start.date)
      const e = parseDate(ev.end.date)
      return [zonedToUtc(tz, s.y, s.mo, s.d), zonedToUtc(tz, e.y, e.mo, e.d), true]
    }
    return [Date.parse(ev.start.dateTime), Date.parse(ev.end.dateTime), false]
  }

  /** The generated occurrence of `master` starting at `originalStart` (not an exception). */
  instanceAt(cal, master, originalStart) {
    const tz = this.seriesZone(cal, master)
    if (master.start.date) {
      const date = parseDate(originalStart.slice(0, 10))
      const len = Math.round((Date.UTC(...ymd(master.end.date)) - Date.UTC(...ymd(master.start.date))) / DAY)
      return this.occurrence(master, date, len, null, tz)
    }
    const t = Date.parse(originalStart)
    const [s, e] = this.span(cal, master)
    return this.occurrence(master, null, 0, { t, dur: e - s }, tz)
  }

  occurrence(master, date, lenDays, timed, tz) {
    const inst = structuredClone(master)
    delete inst.recurrence
    inst.recurringEventId = master.id
    if (date) {
      inst.id = `${master.id}_${dateString(date).replace(/-/g, '')}`
      inst.start = { date: dateString(date) }
      inst.end = { date: dateString(addDays(date, lenDays)) }
      inst.originalStartTime = { date: dateString(date) }
    } else {
      inst.id = `${master.id}_${idStamp(timed.t)}`
      inst.start = { dateTime: formatInZone(timed.t, tz), timeZone: tz }
      inst.end = { dateTime: formatInZone(timed.t + timed.dur, tz), timeZone: tz }
      inst.originalStartTime = { dateTime: formatInZone(timed.t, tz), timeZone: tz }
    }
    return inst
  }

  /** Every occurrence of a series (exceptions applied, cancelled ones kept) starting before `limitMs`. */
  occurrences(cal, master, limitMs) {
    const tz = this.seriesZone(cal, master)
    const out = []
    if (master.start.date) {
      const first = parseDate(master.start.date)
      const lenDays = Math.round((Date.UTC(...ymd(master.end.date)) - Date.UTC(...ymd(master.start.date))) / DAY)
      // Dates are expanded as UTC midnights; a zone east of UTC starts its day up to 14 h earlier,
      // so look a day further and let the caller filter by the real span.
      const starts = expand(master.recurrence.find((r) => r.startsWith('RRULE:')), {
        startMs: Date.UTC(first.y, first.mo - 1, first.d), tz: 'UTC', limitMs: limitMs + DAY,
      })
      for (const t of starts) {
        const d = new Date(t)
        out.push(this.occurrence(master, { y: d.getUTCFullYear(), mo: d.getUTCMonth() + 1, d: d.getUTCDate() }, lenDays, null, tz))
      }
    } else {
      const [s, e] = this.span(cal, master)
      const starts = expand(master.recurrence.find((r) => r.startsWith('RRULE:')), { startMs: s, tz, limitMs })
      for (const t of starts) out.push(this.occurrence(master, null, 0, { t, dur: e - s }, tz))
    }
    return out.map((inst) => {
      const ex = cal.events.get(inst.id)
      if (ex) return structuredClone(ex)
      return master.status === 'cancelled' ? { ...inst, status: 'cancelled' } : inst
    })
  }

  /** Events as `singleEvents=true` shows them, overlapping [minMs, maxMs), cancelled ones included. */
  singleEvents(cal, minMs, maxMs) {
    const out = []
    for (const ev of cal.events.values()) {
      if (ev.recurringEventId && cal.events.has(ev.recurringEventId)) continue // emitted with its series
      if (ev.recurrence) {
        for (const inst of this.occurrences(cal, ev, maxMs)) {
          const [s, e] = this.span(cal, inst)
          if (s < maxMs && e > minMs) out.push(inst)
        }
      } else {
        const [s, e] = this.span(cal, ev)
        if (s < maxMs && e > minMs) out.push(structuredClone(ev))
      }
    }
    return out
  }

  /** The oracle: Google's free/busy rules applied to the calendar, merged and clipped. */
  busy(cal, minMs, maxMs) {
    const spans = []
    for (const ev of this.singleEvents(cal, minMs, maxMs)) {
      if (ev.status === 'cancelled' || ev.transparency === 'transparent') continue
      if (ev.eventType === 'workingLocation') continue
      if ((ev.attendees ?? []).some((a) => a.self && a.responseStatus === 'declined')) continue
      const [s, e] = this.span(cal, ev)
      spans.push([s, e])
    }
    return mergeSpans(spans, minMs, maxMs)
  }

  // -------------------------------------------------------------------------------- HTTP --

  authorized(req) {
    const m = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')
    const exp = m && this.accessTokens.get(m[1])
    return exp && exp > this.host.now()
  }

  /** Routes a request under /calendar/v3 or /token; returns { status, body, headers } or null. */
  async handle(req) {
    const { method, path } = req
    if (method === 'POST' && path === '/token') return this.token(req)
    if (!path.startsWith('/calendar/v3/')) return null
    const rest = path.slice('/calendar/v3'.length)
    let m
    if (method === 'GET' && (m = /^\/calendars\/([^/]+)\/events$/.exec(rest))) {
      return this.guard(req, 'google.events.list', () => this.list(decodeURIComponent(m[1]), req))
    }
    if (method === 'GET' && (m = /^\/calendars\/([^/]+)\/events\/([^/]+)$/.exec(rest)) && m[2] !== 'watch') {
      return this.guard(req, 'google.events.get', () => this.getEvent(decodeURIComponent(m[1]), decodeURIComponent(m[2])))
    }
    if (method === 'POST' && (m = /^\/calendars\/([^/]+)\/events\/watch$/.exec(rest))) {
      return this.guard(req, 'google.events.watch', () => this.watch(decodeURIComponent(m[1]), req))
    }
    if (method === 'POST' && rest === '/channels/stop') return this.guard(req, 'google.channels.stop', () => this.stop(req))
    if (method === 'POST' && rest === '/freeBusy') return this.guard(req, 'google.freeBusy', () => this.freeBusy(req))
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

  faultResponse(status, reason) {
    if (status === 403) return ERRORS[403](reason)
    return (ERRORS[status] ?? (() => googleError(status, 'backendError', 'Error')))()
  }

  async token(req) {
    const fault = await this.host.fault('google.token', req)
    if (fault) return fault
    this.host.count('google.token.requests')
    const form = new URLSearchParams(req.body)
    if (form.get('grant_type') === 'urn:ietf:params:oauth:grant-type:jwt-bearer') return this.jwtGrant(form.get('assertion') ?? '', req)
    if (form.get('grant_type') !== 'refresh_token') {
      return { status: 400, body: { error: 'unsupported_grant_type', error_description: 'Invalid grant_type' } }
    }
    // Google checks the client first: unknown → "not found", wrong secret → "Unauthorized" (both
    // 401 invalid_client); a grant issued to another client → 400 unauthorized_client.
    const clientId = form.get('client_id') ?? ''
    if (this.clients.size > 0 && !this.clients.has(clientId)) {
      return { status: 401, body: { error: 'invalid_client', error_description: 'The OAuth client was not found.' } }
    }
    if (this.clients.size > 0 && this.clients.get(clientId) !== form.get('client_secret')) {
      return { status: 401, body: { error: 'invalid_client', error_description: 'Unauthorized' } }
    }
    const rt = this.refreshTokens.get(form.get('refresh_token') ?? '')
    if (!rt || rt.revoked) {
      return { status: 400, body: { error: 'invalid_grant', error_description: 'Token has been expired or revoked.' } }
    }
    if (rt.clientId && rt.clientId !== clientId) {
      return { status: 400, body: { error: 'unauthorized_client', error_description: 'Unauthorized' } }
    }
    const ttl = 3599
    return {
      status: 200,
      body: { access_token: this.issueAccessToken(ttl * 1000), expires_in: ttl, scope: 'https://www.googleapis.com/auth/calendar.readonly', token_type: 'Bearer' },
    }
  }

  /**
   * RFC 7523 JWT bearer grant, as Google's token endpoint answers it for service accounts: the JWT
   * must be RS256-signed by a known service account, addressed to this token endpoint, short-lived
   * (at most an hour) and current; `sub` names the user to act as, who must be in a domain that
   * granted the service account delegation.
   */
  jwtGrant(assertion, req) {
    this.host.count('google.token.jwt')
    const bad = (error, description, status = 400) => ({ status, body: { error, error_description: description } })
    const parts = assertion.split('.')
    if (parts.length !== 3) return bad('invalid_grant', 'Invalid JWT.')
    let header, claims
    try {
      header = JSON.parse(Buffer.from(parts[0], 'base64url'))
      claims = JSON.parse(Buffer.from(parts[1], 'base64url'))
    } catch {
      return bad('invalid_grant', 'Invalid JWT.')
    }
    const sa = this.serviceAccounts.get(claims.iss)
    if (header.alg !== 'RS256' || !sa) return bad('invalid_grant', 'Invalid JWT Signature.')
    const signed = crypto.verify('RSA-SHA256', Buffer.from(`${parts[0]}.${parts[1]}`), sa.publicKey, Buffer.from(parts[2], 'base64url'))
    if (!signed) return bad('invalid_grant', 'Invalid JWT Signature.')
    const now = Math.floor(this.host.now() / 1000)
    const audience = `http://${req.headers.host}/token`
    if (claims.aud !== audience && claims.aud !== 'https://oauth2.googleapis.com/token') return bad('invalid_grant', 'Invalid JWT: Failed audience check.')
    if (typeof claims.iat !== 'number' || typeof claims.exp !== 'number' || claims.exp - claims.iat > 3600 || claims.exp < now || claims.iat > now + 300) {
      return bad('invalid_grant', 'Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.')
    }
    if (!sa.delegated) {
      return bad('unauthorized_client', 'Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested.', 401)
    }
    if (typeof claims.sub !== 'string' || !claims.sub.toLowerCase().endsWith(`@${sa.domain}`)) return bad('invalid_grant', 'Invalid email or User ID')
    if (!String(claims.scope ?? '').split(' ').includes('https://www.googleapis.com/auth/calendar')) {
      return bad('unauthorized_client', 'Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested.', 401)
    }
    const ttl = 3599
    return { status: 200, body: { access_token: this.issueAccessToken(ttl * 1000), expires_in: ttl, token_type: 'Bearer' } }
  }

  /**
   * events.get: one event (an occurrence of a series too) as it stands. A deleted event comes back
   * with `status: cancelled` for as long as Google keeps it; an id it never had is 404.
   */
  getEvent(calendarId, eventId) {
    const cal = this.calendars.get(calendarId)
    if (!cal) return ERRORS[404]()
    let ev = cal.events.get(eventId) ?? cal.tombstones.get(eventId)
    if (!ev) {
      const master = cal.events.get(eventId.replace(/_[^_]+$/, ''))
      if (master?.recurrence) ev = this.occurrences(cal, master, this.host.now() + HORIZON_FUTURE).find((i) => i.id === eventId)
    }
    if (!ev) return ERRORS[404]()
    return { status: 200, body: structuredClone(ev) }
  }

  list(calendarId, req) {
    const cal = this.calendars.get(calendarId)
    if (!cal) return ERRORS[404]()
    const q = req.query
    const maxResults = Math.min(Math.max(parseInt(q.get('maxResults') ?? '250', 10) || 250, 1), 2500)
    const pageToken = q.get('pageToken')
    if (pageToken) {
      const snap = this.pages.get(pageToken)
      if (!snap) return ERRORS[400]('Invalid page token value.')
      this.pages.delete(pageToken)
      return this.page(cal, snap.items, snap.offset, maxResults, snap.syncToken)
    }
    this.host.count('google.events.list.sequence')
    const singleEvents = q.get('singleEvents') === 'true'
    const syncToken = q.get('syncToken')
    let items
    let window
    if (syncToken) {
      if (q.has('timeMin') || q.has('timeMax') || q.has('orderBy')) {
        return ERRORS[400]('Sync token cannot be used with timeMin, timeMax or orderBy.')
      }
      const tok = decodeToken(syncToken)
      if (!tok || tok.cal !== cal.id) return ERRORS[400]('Invalid sync token value.')
      if (tok.seq < cal.syncFloor) return ERRORS[410]()
      window = tok.window
      items = this.changesSince(cal, tok.seq, window, singleEvents)
    } else {
      const now = this.host.now()
      const minMs = q.has('timeMin') ? Date.parse(q.get('timeMin')) : now - HORIZON_PAST
      const maxMs = q.has('timeMax') ? Date.parse(q.get('timeMax')) : now + HORIZON_FUTURE
      if (Number.isNaN(minMs) || Number.isNaN(maxMs)) return ERRORS[400]('Bad Request')
      window = [minMs, maxMs]
      items = singleEvents
        ? this.singleEvents(cal, minMs, maxMs).filter((e) => e.status !== 'cancelled')
        : [...cal.events.values()].filter((e) => e.status !== 'cancelled').map((e) => structuredClone(e))
      if (q.get('orderBy') === 'startTime') items.sort((a, b) => this.span(cal, a)[0] - this.span(cal, b)[0])
    }
    const nextSyncToken = encodeToken({ cal: cal.id, seq: cal.seq, window })
    return this.page(cal, items, 0, maxResults, nextSyncToken)
  }

  changesSince(cal, seq, window, singleEvents) {
    const ids = new Set(cal.log.filter((c) => c.seq > seq).map((c) => c.id))
    const out = []
    for (const id of ids) {
      const ev = cal.events.get(id) ?? cal.tombstones.get(id)
      if (!ev) continue
      if (singleEvents && ev.recurrence) {
        out.push(...this.occurrences(cal, ev, window[1]).filter((inst) => this.span(cal, inst)[1] > window[0]).map(tombstone))
      } else {
        out.push(tombstone(structuredClone(ev)))
      }
    }
    return out
  }

  page(cal, items, offset, maxResults, syncToken) {
    const body = {
      kind: 'calendar#events',
      etag: etag(),
      summary: cal.id,
      updated: rfc3339(this.host.now()),
      timeZone: cal.timeZone,
      accessRole: 'owner',
      defaultReminders: [],
      items: items.slice(offset, offset + maxResults),
    }
    if (offset + maxResults < items.length) {
      const token = crypto.randomBytes(18).toString('base64url')
      this.pages.set(token, { items, offset: offset + maxResults, syncToken })
      body.nextPageToken = token
    } else {
      body.nextSyncToken = syncToken
    }
    return { status: 200, body }
  }

  watch(calendarId, req) {
    const cal = this.calendars.get(calendarId)
    if (!cal) return ERRORS[404]()
    const b = req.json
    if (!b || typeof b.id !== 'string' || !b.id || b.id.length > 64 || !/^[A-Za-z0-9\-_+/=]+$/.test(b.id)) {
      return ERRORS[400]('Invalid channel id.')
    }
    if (b.type !== 'web_hook' && b.type !== 'webhook') return ERRORS[400]('Invalid channel type.')
    if (typeof b.address !== 'string' || !/^https?:\/\//.test(b.address)) return ERRORS[400]('Invalid address.')
    if (this.channels.has(b.id)) return googleError(400, 'channelIdNotUnique', `Channel id ${b.id} not unique`)
    const ttlSec = Math.min(parseInt(b.params?.ttl ?? '604800', 10) || 604800, 30 * 24 * 3600)
    const ch = {
      id: b.id, calendarId, resourceId: cal.resourceId, address: b.address, token: b.token ?? null,
      expiration: this.host.now() + ttlSec * 1000, messageNumber: 0, stopped: false,
      resourceUri: `${this.host.url}/calendar/v3/calendars/${encodeURIComponent(calendarId)}/events?alt=json`,
    }
    this.channels.set(ch.id, ch)
    // Google confirms a new channel with a `sync` message right after creating it.
    setImmediate(() => this.deliver(ch, 'sync'))
    return {
      status: 200,
      body: { kind: 'api#channel', id: ch.id, resourceId: ch.resourceId, resourceUri: ch.resourceUri, token: ch.token ?? undefined, expiration: String(ch.expiration) },
    }
  }

  stop(req) {
    const b = req.json ?? {}
    const ch = this.channels.get(b.id)
    if (!ch || ch.resourceId !== b.resourceId || ch.stopped) return ERRORS[404]()
    ch.stopped = true
    return { status: 204, body: null }
  }

  freeBusy(req) {
    const b = req.json ?? {}
    const minMs = Date.parse(b.timeMin)
    const maxMs = Date.parse(b.timeMax)
    if (Number.isNaN(minMs) || Number.isNaN(maxMs) || !Array.isArray(b.items)) return ERRORS[400]()
    if (maxMs < minMs) return googleError(400, 'timeRangeEmpty', 'The specified time range is empty.')
    const calendars = {}
    for (const { id } of b.items) {
      const cal = this.calendars.get(id)
      calendars[id] = cal
        ? { busy: this.busy(cal, minMs, maxMs).map(([s, e]) => ({ start: iso(s), end: iso(e) })) }
        : { errors: [{ domain: 'global', reason: 'notFound' }], busy: [] }
    }
    return { status: 200, body: { kind: 'calendar#freeBusy', timeMin: iso(minMs), timeMax: iso(maxMs), calendars } }
  }

  /** The oracle without HTTP: merged busy intervals as ISO strings. */
  freeBusyOf(calendarId, timeMin, timeMax) {
    return this.busy(this.calendar(calendarId), Date.parse(timeMin), Date.parse(timeMax)).map(([s, e]) => ({ start: iso(s), end: iso(e) }))
  }

  // ----------------------------------------------------------------------- notifications --

  liveChannels(calendarId) {
    const now = this.host.now()
    return [...this.channels.values()].filter((c) => c.calendarId === calendarId && !c.stopped && c.expiration > now)
  }

  async notifyCalendar(cal) {
    await Promise.all(this.liveChannels(cal.id).map((ch) => this.deliver(ch, 'exists')))
  }

  /** Queues or sends one notification, applying the configured drop/duplicate/delay/hold. */
  async deliver(ch, state) {
    const msg = { ch, state, number: ++ch.messageNumber }
    if (state !== 'sync' && this.delivery.dropNext > 0) {
      this.delivery.dropNext--
      this.host.count('google.notifications.dropped')
      return
    }
    const copies = state !== 'sync' && this.delivery.duplicateNext > 0 ? (this.delivery.duplicateNext--, 2) : 1
    for (let i = 0; i < copies; i++) {
      if (this.delivery.hold && state !== 'sync') this.held.push(msg)
      else await this.send(msg)
    }
  }

  /** Sends held notifications, in the order given ('fifo', 'reverse' or 'shuffle'). */
  async release(order = 'fifo') {
    const msgs = this.held.splice(0)
    if (order === 'reverse') msgs.reverse()
    if (order === 'shuffle') msgs.sort(() => Math.random() - 0.5)
    this.delivery.hold = false
    for (const m of msgs) await this.send(m)
  }

  async send({ ch, state, number }, attempt = 0) {
    if (this.delivery.delayMs) await new Promise((r) => setTimeout(r, this.delivery.delayMs))
    const headers = {
      'X-Goog-Channel-ID': ch.id,
      'X-Goog-Channel-Expiration': new Date(ch.expiration).toUTCString(),
      'X-Goog-Resource-ID': ch.resourceId,
      'X-Goog-Resource-URI': ch.resourceUri,
      'X-Goog-Resource-State': state,
      'X-Goog-Message-Number': String(number),
    }
    if (ch.token) headers['X-Goog-Channel-Token'] = ch.token
    this.host.count('google.notifications.sent')
    let status = 0
    try {
      const res = await fetch(ch.address, { method: 'POST', headers, body: '' })
      status = res.status
      await res.arrayBuffer()
    } catch {
      status = 0
    }
    this.deliveries.push({ channelId: ch.id, state, number, status })
    // Google retries a notification answered 500, 502, 503 or 504 with exponential backoff (here
    // scaled down: `delivery.retryBaseMs`, doubling, `delivery.retries` attempts).
    if ([0, 500, 502, 503, 504].includes(status)) this.host.retryLater('google', attempt, () => this.send({ ch, state, number }, attempt + 1))
    return status
  }
}

function ymd(s) {
  const { y, mo, d } = parseDate(s)
  return [y, mo - 1, d]
}

const iso = (ms) => new Date(ms).toISOString().replace('.000Z', 'Z')

function encodeToken(t) {
  return Buffer.from(JSON.stringify(t)).toString('base64url')
}

function decodeToken(s) {
  try {
    const t = JSON.parse(Buffer.from(s, 'base64url').toString())
    return typeof t.seq === 'number' && Array.isArray(t.window) ? t : null
  } catch {
    return null
  }
}

module.exports = { GoogleEmulator }
