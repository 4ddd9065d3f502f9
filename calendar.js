'use strict'
// A drop-in for Cal.com's calendar wrappers: `withCalsync(calendar, { calsync })` is the calendar
// service with its busy times read from calsync's cache where the cache can vouch for a calendar,
// and from the service itself (one call) for exactly the calendars it cannot. Declared in
// calendar.d.ts.

const CACHED_MODES = ['slots']

/**
 * Wraps `originalCalendar` (anything with Cal.com's `getAvailability(params)`); every method other
 * than `getAvailability` and `getAvailabilityWithTimeZones` is the original's, called on it.
 */
function withCalsync(originalCalendar, { calsync, modes = CACHED_MODES, onFallback } = {}) {
  if (!originalCalendar || typeof originalCalendar.getAvailability !== 'function') {
    throw Object.assign(new TypeError('withCalsync: originalCalendar must have a getAvailability method'), { code: 'INVALID_ARGUMENT' })
  }
  if (!calsync) throw Object.assign(new TypeError('withCalsync: options.calsync (a CalendarSync, or a function resolving to one) is required'), { code: 'INVALID_ARGUMENT' })
  const instance = () => (typeof calsync === 'function' ? calsync() : calsync)

  /**
   * Busy times in two parts: cached blocks of the calendars calsync serves, and one call of
   * `ask(rest)` for the others. calsync failing (database down, closed) is no answer: then the
   * original is asked for every calendar, as without calsync.
   */
  async function split(params, ask, withTimeZone) {
    const selected = params?.selectedCalendars ?? []
    const ids = selected.map((c) => c?.id).filter((id) => typeof id === 'string' && id)
    if (!modes.includes(params?.mode ?? 'slots') || ids.length === 0) return ask(params)
    let answer
    try {
      answer = await (await instance()).getCachedAvailability({ selectedCalendarIds: [...new Set(ids)], timeMin: params.dateFrom, timeMax: params.dateTo })
    } catch (err) {
      onFallback?.(err)
      return ask(params)
    }
    const served = new Set(answer.served)
    const cached = answer.busy.map((b) => (withTimeZone ? { start: b.start, end: b.end, source: b.source, timeZone: 'UTC' } : { start: b.start, end: b.end, source: b.source }))
    const rest = selected.filter((c) => !served.has(c?.id))
    if (rest.length === 0) return cached
    return [...cached, ...((await ask({ ...params, selectedCalendars: rest })) ?? [])]
  }

  const own = {
    getAvailability: (params) => split(params, (p) => originalCalendar.getAvailability(p), false),
  }
  if (typeof originalCalendar.getAvailabilityWithTimeZones === 'function') {
    own.getAvailabilityWithTimeZones = (params) => split(params, (p) => originalCalendar.getAvailabilityWithTimeZones(p), true)
  }
  return new Proxy(originalCalendar, {
    get(target, prop) {
      if (Object.hasOwn(own, prop)) return own[prop]
      const value = Reflect.get(target, prop, target)
      return typeof value === 'function' ? value.bind(target) : value
    },
  })
}

module.exports = { withCalsync }
