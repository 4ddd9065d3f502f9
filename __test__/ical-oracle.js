'use strict'
// An oracle for CalDAV busy time, independent of calsync: random iCalendar events and the busy
// blocks they define, computed with wall-clock arithmetic and Node's ICU zones (Intl), following
// RFC 5545 for times in a DST gap (the offset before it) and repeated times (the first).

const range = { timeMin: '2027-01-04T00:00:00.000Z', timeMax: '2027-06-30T00:00:00.000Z' }
const CAL_ZONE = 'Europe/Berlin'
const ZONES = ['UTC', 'Europe/Berlin', 'America/New_York', 'Australia/Sydney', 'Asia/Kolkata', null /* floating */]
const MIN = 60_000
const HOUR = 60 * MIN
const DAY = 24 * HOUR

const formats = new Map()
/** The zone's UTC offset (ms) at an instant. */
function offsetAt(instant, zone) {
  if (zone === 'UTC') return 0
  let f = formats.get(zone)
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', { timeZone: zone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit' })
    formats.set(zone, f)
  }
  const p = Object.fromEntries(f.formatToParts(new Date(instant)).map((x) => [x.type, x.value]))
  return Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour, +p.minute, +p.second) - instant
}

/** A wall-clock time (ms, read as if UTC) in `zone` as an instant: the first of a repeated time,
 * and a time in a gap read with the offset in force before the gap. */
function localToUtc(naive, zone) {
  const candidates = [...new Set([offsetAt(naive - 26 * HOUR, zone), offsetAt(naive + 26 * HOUR, zone)])]
  const valid = candidates.map((o) => naive - o).filter((t) => offsetAt(t, zone) === naive - t)
  if (valid.length) return Math.min(...valid)
  const before = offsetAt(naive - Math.max(...candidates) - 3 * HOUR, zone)
  return naive - before
}

const pad = (n, w = 2) => String(n).padStart(w, '0')
function icalLocal(naive) {
  const d = new Date(naive)
  return `${d.getUTCFullYear()}${pad(d.getUTCMonth() + 1)}${pad(d.getUTCDate())}T${pad(d.getUTCHours())}${pad(d.getUTCMinutes())}00`
}
const icalDate = (naive) => icalLocal(naive).slice(0, 8)

/** One random event: its iCalendar text and its busy blocks (instants). */
function randomEvent(rand, uid, owner) {
  const pick = (xs) => xs[Math.floor(rand() * xs.length)]
  const int = (a, b) => a + Math.floor(rand() * (b - a + 1))
  const allDay = rand() < 0.15
  const zone = allDay ? null : pick(ZONES)
  // Exchange's invitations name Berlin's zone the Windows way.
  const tzid = zone === 'Europe/Berlin' && rand() < 0.5 ? 'W. Europe Standard Time' : zone
  const wallZone = zone ?? CAL_ZONE
  // Start days from 2026-12-20 to 2027-07-10: some series start before the window, some end after.
  const day0 = Date.UTC(2026, 11, 20) + int(0, 200) * DAY
  const startNaive = allDay ? day0 : day0 + int(0, 23) * HOUR + pick([0, 15, 30, 45]) * MIN
  const lengthMs = allDay ? int(1, 3) * DAY : pick([15, 30, 45, 60, 90, 120, 240]) * MIN
  const props = []
  const fmt = (naive) => {
    if (allDay) return `;VALUE=DATE:${icalDate(naive)}`
    if (zone === 'UTC') return `:${icalLocal(naive)}Z`
    if (zone === null) return `:${icalLocal(naive)}`
    return `;TZID=${tzid}:${icalLocal(naive)}`
  }
  props.push(`DTSTART${fmt(startNaive)}`)
  const useDuration = rand() < 0.4
  if (allDay) props.push(useDuration ? `DURATION:P${lengthMs / DAY}D` : `DTEND;VALUE=DATE:${icalDate(startNaive + lengthMs)}`)
  else if (useDuration) props.push(`DURATION:PT${lengthMs / MIN}M`)
  else props.push(`DTEND${fmt(startNaive + lengthMs)}`)

  // Recurrence on the wall clock.
  let starts = [startNaive]
  const kind = rand()
  if (kind < 0.45) {
    const interval = int(1, 3)
    const weekly = rand() < 0.5
    let rule
    if (weekly) {
      const dow = new Date(startNaive).getUTCDay()
      const names = ['SU', 'MO', 'TU', 'WE', 'TH', 'FR', 'SA']
      const days = new Set([dow])
      if (rand() < 0.5) days.add(int(0, 6))
      const byday = [...days].sort()
      rule = `FREQ=WEEKLY;INTERVAL=${interval};BYDAY=${byday.map((d) => names[d]).join(',')}`
      starts = []
      // Weeks start on Monday (WKST default): walk week by week from DTSTART's week.
      const weekStart = Math.floor(startNaive / DAY) * DAY - ((dow + 6) % 7) * DAY
      for (let w = 0; starts.length < 400 && w < 200; w += interval) {
        for (const d of [...days].sort((a, b) => ((a + 6) % 7) - ((b + 6) % 7))) {
          const t = weekStart + (w * 7 + ((d + 6) % 7)) * DAY + (startNaive - Math.floor(startNaive / DAY) * DAY)
          if (t >= startNaive) starts.push(t)
        }
      }
    } else {
      rule = `FREQ=DAILY;INTERVAL=${interval}`
      starts = []
      for (let i = 0; i < 400; i++) starts.push(startNaive + i * interval * DAY)
    }
    const bound = rand()
    if (bound < 0.4) {
      const count = int(1, 30)
      rule += `;COUNT=${count}`
      starts = starts.slice(0, count)
    } else if (bound < 0.8) {
      const untilNaive = startNaive + int(0, 120) * DAY + int(0, 23) * HOUR
      if (allDay) {
        rule += `;UNTIL=${icalDate(untilNaive)}`
        starts = starts.filter((t) => t <= Math.floor(untilNaive / DAY) * DAY)
      } else {
        // UNTIL in UTC, compared with each instance's instant.
        const untilUtc = localToUtc(untilNaive, wallZone)
        rule += `;UNTIL=${icalLocal(untilUtc)}Z`
        starts = starts.filter((t) => localToUtc(t, wallZone) <= untilUtc)
      }
    } // else unbounded
    props.push(`RRULE:${rule}`)
  }
  const toInstant = (naive) => localToUtc(naive, wallZone)
  const duration = allDay ? null : (useDuration || zone === null || zone === 'UTC' ? lengthMs : toInstant(startNaive + lengthMs) - toInstant(startNaive))
  // Each instance's busy block: all-day spans whole local days; a timed one lasts the first
  // instance's exact length.
  const block = (naive) => allDay
    ? [toInstant(naive), toInstant(naive + lengthMs)]
    : [toInstant(naive), toInstant(naive) + duration]
  let blocks = new Map(starts.map((t) => [t, block(t)]))
  const overrides = []
  if (props.some((p) => p.startsWith('RRULE')) && starts.length > 2) {
    // Exceptions and moved or cancelled instances, among the first instances.
    const some = starts.slice(0, 40)
    const ex = pick(some)
    props.push(`EXDATE${fmt(ex)}`)
    blocks.delete(ex)
    const moved = pick(some)
    if (moved !== ex) {
      const to = moved + int(-3, 3) * (allDay ? DAY : HOUR)
      const cancelled = rand() < 0.3
      overrides.push([`RECURRENCE-ID${fmt(moved)}`, `DTSTART${fmt(to)}`,
        allDay ? `DTEND;VALUE=DATE:${icalDate(to + lengthMs)}` : `DTEND${fmt(to + lengthMs)}`, ...(cancelled ? ['STATUS:CANCELLED'] : [])])
      blocks.delete(moved)
      if (!cancelled) blocks.set(`moved`, allDay ? [toInstant(to), toInstant(to + lengthMs)] : [toInstant(to), toInstant(to + lengthMs)])
    }
  }
  let busy = [...blocks.values()]
  const free = rand()
  // A component's properties are its own: clients write what an override shares with its series
  // into the override too.
  if (free < 0.06) {
    props.push('TRANSP:TRANSPARENT')
    for (const o of overrides) o.push('TRANSP:TRANSPARENT')
    busy = []
  } else if (free < 0.12) {
    props.push('STATUS:CANCELLED')
    for (const o of overrides) if (!o.includes('STATUS:CANCELLED')) o.push('STATUS:CANCELLED')
    busy = []
  } else if (free < 0.18) {
    props.push('ORGANIZER:mailto:boss@example.com', `ATTENDEE;PARTSTAT=DECLINED;CN="Owner, The":mailto:${owner}`)
    busy = []
    // A declined series: the overrides carry the attendee too, or they would be busy.
    for (const o of overrides) o.push(`ATTENDEE;PARTSTAT=DECLINED:mailto:${owner}`)
  } else if (free < 0.25 && !allDay) {
    const travel = pick([15, 30, 60])
    props.push(`X-APPLE-TRAVEL-DURATION;VALUE=DURATION:PT${travel}M`)
    for (const o of overrides) o.push(`X-APPLE-TRAVEL-DURATION;VALUE=DURATION:PT${travel}M`)
    busy = busy.map(([a, b]) => [a - travel * MIN, b])
  }
  const vevent = (lines) => `BEGIN:VEVENT\r\nUID:${uid}\r\nDTSTAMP:20261201T000000Z\r\nSUMMARY:event ${uid}\r\n${lines.join('\r\n')}\r\nEND:VEVENT\r\n`
  // Exchange sends the Windows zone's definition along (servers refuse a TZID they cannot find).
  const vtimezone = tzid === 'W. Europe Standard Time'
    ? 'BEGIN:VTIMEZONE\r\nTZID:W. Europe Standard Time\r\nBEGIN:STANDARD\r\nDTSTART:16010101T030000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nRRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10\r\nEND:STANDARD\r\nBEGIN:DAYLIGHT\r\nDTSTART:16010101T020000\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nRRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n'
    : ''
  const ics = `BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calsync//parity//EN\r\n${vtimezone}${vevent(props)}${overrides.map(vevent).join('')}END:VCALENDAR\r\n`
  return { ics, busy }
}

/** The busy blocks the read must answer: clipped to the range, merged where they overlap or touch. */
function expectedBusy(events) {
  const lo = Date.parse(range.timeMin)
  const hi = Date.parse(range.timeMax)
  const all = [...events.values()].flatMap((e) => e.busy)
    .map(([a, b]) => [Math.max(a, lo), Math.min(b, hi)])
    .filter(([a, b]) => a < b)
    .sort((x, y) => x[0] - y[0])
  const out = []
  for (const [a, b] of all) {
    const last = out[out.length - 1]
    if (last && a <= last[1]) last[1] = Math.max(last[1], b)
    else out.push([a, b])
  }
  return out.map(([a, b]) => [new Date(a).toISOString(), new Date(b).toISOString()])
}

module.exports = { randomEvent, expectedBusy, localToUtc, range, CAL_ZONE }
