'use strict'
// The subset of RFC 5545 recurrence rules the emulator expands: FREQ=DAILY|WEEKLY|MONTHLY with
// INTERVAL, COUNT, UNTIL and (weekly) BYDAY. Occurrences keep their wall-clock time in the series'
// time zone across DST changes, as Google's expansion does.

const { wallClock, zonedToUtc, addDays } = require('./time')

const WEEKDAYS = ['SU', 'MO', 'TU', 'WE', 'TH', 'FR', 'SA']

function parseRule(line) {
  const body = line.replace(/^RRULE:/, '')
  const rule = { freq: null, interval: 1, count: null, until: null, byday: null }
  for (const part of body.split(';')) {
    const [k, v] = part.split('=')
    if (k === 'FREQ') rule.freq = v
    else if (k === 'INTERVAL') rule.interval = Math.max(1, parseInt(v, 10))
    else if (k === 'COUNT') rule.count = parseInt(v, 10)
    else if (k === 'UNTIL') rule.until = parseUntil(v)
    else if (k === 'BYDAY') rule.byday = v.split(',').map((d) => WEEKDAYS.indexOf(d.slice(-2)))
  }
  if (!['DAILY', 'WEEKLY', 'MONTHLY'].includes(rule.freq)) throw new Error(`unsupported RRULE ${line}`)
  return rule
}

function parseUntil(v) {
  const m = /^(\d{4})(\d{2})(\d{2})(?:T(\d{2})(\d{2})(\d{2})Z?)?$/.exec(v)
  if (!m) throw new Error(`bad UNTIL ${v}`)
  return Date.UTC(+m[1], +m[2] - 1, +m[3], +(m[4] ?? 23), +(m[5] ?? 59), +(m[6] ?? 59))
}

/**
 * Occurrence start instants (ms) of a series whose first start is `startMs` in `tz`, up to `limitMs`
 * (exclusive) and at most `max` of them. For all-day series pass `allDay` and the first date.
 */
function expand(rruleLine, { startMs, tz, limitMs, max = 5000 }) {
  const rule = parseRule(rruleLine)
  const w = wallClock(startMs, tz)
  const first = { y: w.y, mo: w.mo, d: w.d }
  const at = (date) => zonedToUtc(tz, date.y, date.mo, date.d, w.h, w.mi, w.s)
  const out = []
  let produced = 0
  const accept = (date) => {
    const t = at(date)
    if (t < startMs) return true
    if (rule.until !== null && t > rule.until) return false
    if (rule.count !== null && produced >= rule.count) return false
    produced++
    if (t >= limitMs) return false
    out.push(t)
    return out.length < max
  }
  if (rule.freq === 'DAILY') {
    for (let i = 0; ; i += rule.interval) if (!accept(addDays(first, i))) break
  } else if (rule.freq === 'WEEKLY') {
    const startDow = new Date(Date.UTC(first.y, first.mo - 1, first.d)).getUTCDay()
    const days = (rule.byday ?? [startDow]).slice().sort((a, b) => a - b)
    const weekStart = addDays(first, -startDow) // the Sunday of the first week
    outer: for (let week = 0; ; week += rule.interval) {
      for (const dow of days) {
        const date = addDays(weekStart, week * 7 + dow)
        if (week === 0 && dow < startDow) continue
        if (!accept(date)) break outer
      }
    }
  } else {
    for (let i = 0; ; i += rule.interval) {
      const m0 = first.mo - 1 + i
      const date = { y: first.y + Math.floor(m0 / 12), mo: (m0 % 12) + 1, d: first.d }
      // Months without that day are skipped, as RFC 5545 says.
      if (new Date(Date.UTC(date.y, date.mo - 1, date.d)).getUTCDate() !== date.d) {
        if (i > 1200) break
        continue
      }
      if (!accept(date)) break
    }
  }
  return out
}

module.exports = { expand, parseRule }
