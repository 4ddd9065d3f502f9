'use strict'
// withCalsync, the drop-in for Cal.com's calendar wrappers: cached calendars from the cache, the
// original calendar asked once for exactly the others, everything else passed through.
const test = require('node:test')
const assert = require('node:assert/strict')
const { startStack } = require('./stack')
const { withCalsync } = require('../calsync.js')

/** A stand-in for a Cal.com calendar service: records every call, answers one busy block per calendar. */
class FakeCalendar {
  #credentialId = 7 // a private field: methods must run on the original object, not a proxy
  constructor() {
    this.calls = []
  }
  getCredentialId() {
    return this.#credentialId
  }
  async getAvailability(params) {
    this.calls.push({ method: 'getAvailability', params })
    return params.selectedCalendars.map((c) => ({ start: `${params.dateFrom.slice(0, 10)}T12:00:00.000Z`, end: `${params.dateFrom.slice(0, 10)}T13:00:00.000Z`, source: `live:${c.externalId}` }))
  }
  async getAvailabilityWithTimeZones(params) {
    this.calls.push({ method: 'getAvailabilityWithTimeZones', params })
    return params.selectedCalendars.map(() => ({ start: params.dateFrom, end: params.dateTo, timeZone: 'Europe/Berlin' }))
  }
  async createEvent(event, credentialId) {
    this.calls.push({ method: 'createEvent', event, credentialId })
    return { uid: 'u', id: 'e1', type: 'google_calendar', password: '', url: '', additionalInfo: {} }
  }
  async listCalendars() {
    return [{ externalId: 'x', integration: 'google_calendar' }]
  }
}

test('withCalsync: served calendars from the cache, the original asked once for exactly the rest, other methods passed through', async () => {
  const s = await startStack()
  try {
    const day = new Date(Date.now() + 2 * 86_400_000).toISOString().slice(0, 10)
    const user = await s.googleUser()
    const cached = await s.googleCalendar(user)
    await s.emu.google.insertEvent(cached.externalId, { summary: 'x', start: { dateTime: `${day}T09:00:00Z` }, end: { dateTime: `${day}T10:00:00Z` } }, { notify: false })
    await s.sync.subscribe(cached.id)
    const unsubscribed = await s.googleCalendar(user) // selected, never subscribed: not_subscribed
    const rows = [
      { id: cached.id, externalId: cached.externalId, integration: 'google_calendar' },
      { id: unsubscribed.id, externalId: unsubscribed.externalId, integration: 'google_calendar' },
      { externalId: 'no-id@example.com', integration: 'google_calendar' }, // no SelectedCalendar id
      { id: 'no-such-row', externalId: 'gone@example.com', integration: 'google_calendar' },
    ]
    const original = new FakeCalendar()
    const calendar = withCalsync(original, { calsync: async () => s.sync })
    const params = { dateFrom: `${day}T00:00:00.000Z`, dateTo: `${day}T23:59:59.000Z`, selectedCalendars: rows, mode: 'slots', fallbackToPrimary: false }

    const busy = await calendar.getAvailability(params)
    assert.equal(original.calls.length, 1, 'the original calendar is asked once')
    const asked = original.calls[0].params
    assert.deepEqual(asked.selectedCalendars, rows.slice(1), 'for exactly the calendars calsync does not serve, as given')
    assert.equal(asked.selectedCalendars[0], rows[1], 'the same objects')
    assert.deepEqual({ ...asked, selectedCalendars: undefined }, { ...params, selectedCalendars: undefined }, 'with the call\'s other parameters')
    assert.deepEqual(busy, [
      { start: `${day}T09:00:00.000Z`, end: `${day}T10:00:00.000Z`, source: 'google_calendar' },
      ...rows.slice(1).map((c) => ({ start: `${day}T12:00:00.000Z`, end: `${day}T13:00:00.000Z`, source: `live:${c.externalId}` })),
    ])

    // Every calendar served: the original is not asked at all.
    original.calls = []
    assert.deepEqual(await calendar.getAvailability({ ...params, selectedCalendars: rows.slice(0, 1) }), [{ start: `${day}T09:00:00.000Z`, end: `${day}T10:00:00.000Z`, source: 'google_calendar' }])
    assert.equal(original.calls.length, 0)

    // With time zones: cached blocks are UTC; the rest from the original's own method.
    const withTz = await calendar.getAvailabilityWithTimeZones({ ...params, selectedCalendars: rows.slice(0, 2) })
    assert.deepEqual(withTz, [
      { start: `${day}T09:00:00.000Z`, end: `${day}T10:00:00.000Z`, source: 'google_calendar', timeZone: 'UTC' },
      { start: params.dateFrom, end: params.dateTo, timeZone: 'Europe/Berlin' },
    ])
    assert.deepEqual(original.calls.map((c) => [c.method, c.params.selectedCalendars]), [['getAvailabilityWithTimeZones', [rows[1]]]])

    // Modes Cal.com does not serve from a cache (booking confirmation, overlays): the original, for all.
    for (const mode of ['booking', 'overlay']) {
      original.calls = []
      await calendar.getAvailability({ ...params, mode })
      assert.deepEqual(original.calls.map((c) => c.params.selectedCalendars), [rows], mode)
    }

    // Other methods are the original's, on the original object.
    assert.equal(calendar.getCredentialId(), 7)
    assert.deepEqual(await calendar.listCalendars(), [{ externalId: 'x', integration: 'google_calendar' }])
    original.calls = []
    assert.equal((await calendar.createEvent({ title: 't' }, 3)).id, 'e1')
    assert.deepEqual(original.calls, [{ method: 'createEvent', event: { title: 't' }, credentialId: 3 }])

    // calsync giving no answer is never "free": the original answers for every calendar.
    const errors = []
    const closed = await require('../calsync.js').CalendarSync.connect(s.options)
    await closed.close()
    const failing = withCalsync(original, { calsync: closed, onFallback: (e) => errors.push(e.code) })
    original.calls = []
    const all = await failing.getAvailability(params)
    assert.deepEqual(original.calls.map((c) => c.params.selectedCalendars), [rows])
    assert.equal(all.length, rows.length)
    assert.deepEqual(errors, ['CLOSED'])
    const unreachable = withCalsync(original, { calsync: () => Promise.reject(Object.assign(new Error('down'), { code: 'DB_UNAVAILABLE' })) })
    original.calls = []
    await unreachable.getAvailability(params)
    assert.deepEqual(original.calls.map((c) => c.params.selectedCalendars), [rows])

    // A service without getAvailabilityWithTimeZones stays without it.
    const plain = withCalsync({ getAvailability: async () => [] }, { calsync: s.sync })
    assert.equal(plain.getAvailabilityWithTimeZones, undefined)
    assert.throws(() => withCalsync({}, { calsync: s.sync }), { code: 'INVALID_ARGUMENT' })
    assert.throws(() => withCalsync(original, {}), { code: 'INVALID_ARGUMENT' })
  } finally {
    await s.close()
  }
})
