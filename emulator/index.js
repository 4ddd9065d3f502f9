'use strict'
// The provider emulator: one local HTTP server speaking the parts of Google Calendar v3 and
// Microsoft Graph v1.0 that calsync uses, with fault injection and request counters. Tests run it
// in-process; `npx calsync emulator` runs it for people developing against calsync.

const http = require('node:http')
const { GoogleEmulator } = require('./google')
const { MicrosoftEmulator } = require('./microsoft')
const { control } = require('./control')

class Emulator {
  constructor() {
    this.server = null
    this.url = null
    this.counts = {}
    this.serviceMs = 0
    this.faults = []
    this.retry = { baseMs: 100, attempts: 8 } // redelivery of notifications the receiver failed
    this.retries = new Set()
    this.google = new GoogleEmulator(this)
    this.microsoft = new MicrosoftEmulator(this)
  }

  /** The emulator's clock: the system clock shifted by `setClock` (simulations of weeks passing). */
  now() {
    return Date.now() + (this.clockOffsetMs ?? 0)
  }

  /** Shifts the emulator's clock by `offsetMs` (0: the system clock), as calsync's `shiftClockForTesting`. */
  setClock(offsetMs) {
    this.clockOffsetMs = offsetMs
  }

  /**
   * Schedules the redelivery of a notification that failed (attempt `attempt`, 0-based) after
   * `retry.baseMs * 2^attempt`, up to `retry.attempts` attempts; `retrying()` says how many wait.
   */
  retryLater(provider, attempt, resend) {
    if (attempt + 1 >= this.retry.attempts || !this.server) return
    this.count(`${provider}.notifications.retried`)
    const timer = setTimeout(() => {
      this.retries.delete(timer)
      resend().catch(() => {})
    }, this.retry.baseMs * 2 ** attempt)
    this.retries.add(timer)
  }

  /** How many failed notifications wait for their redelivery. */
  retrying() {
    return this.retries.size
  }

  /** Adds `n` to the counter `name`. */
  count(name, n = 1) {
    this.counts[name] = (this.counts[name] ?? 0) + n
  }

  /** The counter `name` (0 when never touched). */
  counter(name) {
    return this.counts[name] ?? 0
  }

  /**
   * Milliseconds spent answering requests since the start (injected latency included): the
   * provider's share of a client's wall time, for benchmarks.
   */
  serviceTime() {
    return this.serviceMs
  }

  resetCounts() {
    this.counts = {}
  }

  /**
   * Injects a fault on an endpoint (for example `google.events.list`): after `skip` matching
   * requests pass, the next `times` get `status` (with `retryAfter` as the Retry-After header and
   * `reason` for 403s), or only `latencyMs` of delay when no status is given. `answerDelayMs`
   * instead delays the answer of a request that was carried out: the provider acted, the client
   * hears of it late or (after its timeout) never.
   */
  inject({ endpoint, status, times = 1, skip = 0, retryAfter, reason, latencyMs = 0, answerDelayMs = 0 }) {
    const fault = { endpoint, status, times, skip, retryAfter, reason, latencyMs, answerDelayMs }
    this.faults.push(fault)
    return fault
  }

  clearFaults() {
    this.faults = []
  }

  /** Waits out an `answerDelayMs` fault on `endpoint`, after the request was carried out. */
  async answerDelay(endpoint) {
    const f = this.faults.find((x) => x.endpoint === endpoint && x.answerDelayMs && x.times > 0)
    if (!f) return
    f.times--
    this.count(`${endpoint}.answer_delayed`)
    await new Promise((r) => setTimeout(r, f.answerDelayMs))
  }

  /** The response a fault dictates for this request, or null; applies latency either way. */
  async fault(endpoint, _req) {
    for (const f of this.faults) {
      if (f.endpoint !== endpoint || f.times <= 0 || f.answerDelayMs) continue
      if (f.skip > 0) {
        f.skip--
        continue
      }
      f.times--
      if (f.latencyMs) await new Promise((r) => setTimeout(r, f.latencyMs))
      if (!f.status) return null
      this.count(`${endpoint}.faulted`)
      const provider = endpoint.startsWith('google.') ? this.google : this.microsoft
      const res = provider.faultResponse(f.status, f.reason)
      if (f.retryAfter !== undefined) res.headers = { 'Retry-After': String(f.retryAfter) }
      return res
    }
    return null
  }

  async dispatch(req) {
    this.count(`${req.method} ${req.path}`)
    return (await control(this, req)) ?? (await this.google.handle(req)) ?? (await this.microsoft.handle(req)) ?? { status: 404, body: { error: { code: 404, message: 'Not Found' } } }
  }

  /** Starts listening on 127.0.0.1 (`port` 0 picks a free one). */
  async start({ port = 0, host = '127.0.0.1' } = {}) {
    this.server = http.createServer((req, res) => this.onRequest(req, res))
    this.server.keepAliveTimeout = 60_000
    await new Promise((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen(port, host, resolve)
    })
    this.url = `http://${host}:${this.server.address().port}`
    return this
  }

  onRequest(req, res) {
    const chunks = []
    req.on('data', (c) => chunks.push(c))
    req.on('end', async () => {
      const began = performance.now()
      const u = new URL(req.url, 'http://emulator')
      const body = Buffer.concat(chunks).toString('utf8')
      let json = null
      if (body && (req.headers['content-type'] ?? '').includes('json')) {
        try {
          json = JSON.parse(body)
        } catch {
          json = undefined
        }
      }
      const request = { method: req.method, path: u.pathname, query: u.searchParams, headers: req.headers, body, json }
      let out
      try {
        if (json === undefined) out = { status: 400, body: { error: { code: 400, message: 'Invalid JSON payload received.' } } }
        else out = await this.dispatch(request)
      } catch (e) {
        out = { status: 500, body: { error: { code: 500, message: `emulator error: ${e.message}` } } }
        if (process.env.CALSYNC_EMULATOR_DEBUG) console.error(e)
      }
      const headers = { ...(out.headers ?? {}) }
      let payload = ''
      if (out.body !== null && out.body !== undefined) {
        if (typeof out.body === 'string') {
          payload = out.body
          headers['Content-Type'] ??= 'text/plain; charset=utf-8'
        } else {
          payload = JSON.stringify(out.body)
          headers['Content-Type'] ??= 'application/json; charset=UTF-8'
        }
      }
      res.writeHead(out.status, headers)
      res.end(payload)
      this.serviceMs += performance.now() - began
    })
  }

  async close() {
    for (const t of this.retries) clearTimeout(t)
    this.retries.clear()
    if (!this.server) return
    this.server.closeAllConnections?.()
    await new Promise((r) => this.server.close(r))
    this.server = null
  }
}

/** Starts an emulator; resolves to it once it listens (`emulator.url`). */
async function startEmulator(options) {
  return new Emulator().start(options)
}

module.exports = { startEmulator, Emulator }
