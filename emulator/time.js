'use strict'
// Time-zone arithmetic with Intl only (no dependencies): wall-clock time in an IANA zone <-> UTC.

const formatters = new Map()

function formatter(tz) {
  let f = formatters.get(tz)
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: tz, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit',
      hour: '2-digit', minute: '2-digit', second: '2-digit',
    })
    formatters.set(tz, f)
  }
  return f
}

/** The wall-clock fields of instant `ms` in `tz`. */
function wallClock(ms, tz) {
  const p = {}
  for (const { type, value } of formatter(tz).formatToParts(new Date(ms))) p[type] = value
  return { y: +p.year, mo: +p.month, d: +p.day, h: +p.hour, mi: +p.minute, s: +p.second }
}

/** Offset of `tz` from UTC at instant `ms`, in milliseconds. */
function offsetMs(tz, ms) {
  const w = wallClock(ms, tz)
  return Date.UTC(w.y, w.mo - 1, w.d, w.h, w.mi, w.s) - Math.floor(ms / 1000) * 1000
}

/**
 * The instant of wall-clock time (y, mo, d, h, mi, s) in `tz`. In a DST gap the wall time does not
 * exist; it then resolves to the instant the clock jumps forward to, as chrono's `earliest()` after
 * the gap and Google both do for all-day boundaries.
 */
function zonedToUtc(tz, y, mo, d, h = 0, mi = 0, s = 0) {
  const naive = Date.UTC(y, mo - 1, d, h, mi, s)
  const first = naive - offsetMs(tz, naive)
  const second = naive - offsetMs(tz, first)
  if (first === second) return first
  // Ambiguous (fall back) or nonexistent (spring forward): try both candidates.
  const candidates = [first, second].filter((t) => {
    const w = wallClock(t, tz)
    return Date.UTC(w.y, w.mo - 1, w.d, w.h, w.mi, w.s) === naive
  })
  if (candidates.length) return Math.min(...candidates)
  return Math.max(first, second)
}

/** `2026-03-01T10:00:00+01:00`: instant `ms` written in `tz`'s local time with its offset. */
function formatInZone(ms, tz) {
  const off = offsetMs(tz, ms)
  const local = new Date(Math.floor(ms / 1000) * 1000 + off).toISOString().slice(0, 19)
  if (off === 0) return `${local}Z`
  const sign = off < 0 ? '-' : '+'
  const abs = Math.abs(off) / 60000
  return `${local}${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`
}

/** Parses `YYYY-MM-DD` into { y, mo, d }. */
function parseDate(s) {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(s)
  if (!m) throw new Error(`bad date ${s}`)
  return { y: +m[1], mo: +m[2], d: +m[3] }
}

/** Adds `n` days to a { y, mo, d } civil date. */
function addDays({ y, mo, d }, n) {
  const t = new Date(Date.UTC(y, mo - 1, d + n))
  return { y: t.getUTCFullYear(), mo: t.getUTCMonth() + 1, d: t.getUTCDate() }
}

const pad = (n, w = 2) => String(n).padStart(w, '0')
const dateString = ({ y, mo, d }) => `${pad(y, 4)}-${pad(mo)}-${pad(d)}`

/** Clips [start, end] spans to [minMs, maxMs) and merges overlapping or touching ones, as free/busy answers do. */
function mergeSpans(spans, minMs, maxMs) {
  const sorted = spans.map(([s, e]) => [Math.max(s, minMs), Math.min(e, maxMs)]).filter(([s, e]) => s < e).sort((a, b) => a[0] - b[0])
  const merged = []
  for (const [s, e] of sorted) {
    const last = merged[merged.length - 1]
    if (last && s <= last[1]) last[1] = Math.max(last[1], e)
    else merged.push([s, e])
  }
  return merged
}

module.exports = { wallClock, offsetMs, zonedToUtc, formatInZone, parseDate, addDays, dateString, mergeSpans }
