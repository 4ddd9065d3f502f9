'use strict'
// Seeded random events as Google and Outlook store them, for the parity tests and the fault matrix.

const HOUR = 3600 * 1000
const DAY = 24 * HOUR
const day0 = Math.ceil(Date.now() / DAY) * DAY
const dateOf = (ms) => new Date(ms).toISOString().slice(0, 10)
const wall = (ms) => new Date(ms).toISOString().slice(0, 19) + '.0000000'
const GOOGLE_ZONES = ['UTC', 'America/New_York', 'America/Los_Angeles', 'Europe/Berlin', 'Europe/London', 'Asia/Kolkata', 'Asia/Tokyo', 'Australia/Sydney', 'Pacific/Auckland', 'America/Sao_Paulo']
const OUTLOOK_ZONES = ['UTC', 'Pacific Standard Time', 'Eastern Standard Time', 'W. Europe Standard Time', 'GMT Standard Time', 'India Standard Time', 'Tokyo Standard Time', 'AUS Eastern Standard Time', 'New Zealand Standard Time', 'E. South America Standard Time', 'Europe/Berlin', 'America/Chicago']
const SHOW_AS = ['busy', 'busy', 'busy', 'tentative', 'oof', 'free', 'workingElsewhere']

/** A random Google event in zone `tz`: timed or all-day, single or recurring, busy or not. */
function googleEvent(rnd, tz) {
  const pick = (xs) => xs[Math.floor(rnd() * xs.length)]
  const startMs = day0 + Math.floor(rnd() * 40) * DAY + Math.floor(rnd() * 96) * 15 * 60000
  const ev = { summary: 'e' }
  const kind = rnd()
  if (kind < 0.15) {
    const d = day0 + Math.floor(rnd() * 40) * DAY
    ev.start = { date: dateOf(d) }
    ev.end = { date: dateOf(d + (1 + Math.floor(rnd() * 3)) * DAY) }
    if (rnd() < 0.3) ev.recurrence = [`RRULE:FREQ=WEEKLY;COUNT=${2 + Math.floor(rnd() * 4)}`]
  } else {
    const dur = (1 + Math.floor(rnd() * 12)) * 15 * 60000
    ev.start = { dateTime: new Date(startMs).toISOString(), timeZone: tz }
    ev.end = { dateTime: new Date(startMs + dur).toISOString(), timeZone: tz }
    if (kind < 0.45) {
      ev.recurrence = [pick([
        `RRULE:FREQ=DAILY;COUNT=${2 + Math.floor(rnd() * 10)}`,
        'RRULE:FREQ=WEEKLY;BYDAY=MO,WE,FR;COUNT=9',
        `RRULE:FREQ=WEEKLY;UNTIL=${new Date(startMs + 30 * DAY).toISOString().replace(/[-:]/g, '').slice(0, 15)}Z`,
        'RRULE:FREQ=DAILY;INTERVAL=3',
        'RRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=TU,TH',
        'RRULE:FREQ=MONTHLY;COUNT=3',
      ])]
    }
  }
  const flavour = rnd()
  if (flavour < 0.1) ev.transparency = 'transparent'
  else if (flavour < 0.2) ev.status = 'tentative'
  else if (flavour < 0.3) ev.attendees = [{ email: 'me@example.com', self: true, responseStatus: 'declined' }, { email: 'x@example.com', responseStatus: 'accepted' }]
  else if (flavour < 0.35) ev.eventType = 'outOfOffice'
  else if (flavour < 0.4) ev.eventType = 'focusTime'
  else if (flavour < 0.45 && ev.start.dateTime) Object.assign(ev, { eventType: 'workingLocation', transparency: 'transparent' })
  return ev
}

/** A random Outlook event in zone `tz` (Windows or IANA name), with its showAs. */
function outlookEvent(rnd, tz) {
  const pick = (xs) => xs[Math.floor(rnd() * xs.length)]
  const ev = { subject: 'e', showAs: pick(SHOW_AS), isCancelled: rnd() < 0.05 }
  if (rnd() < 0.15) {
    const d = day0 + Math.floor(rnd() * 40) * DAY
    ev.isAllDay = true
    ev.start = { dateTime: wall(d), timeZone: tz }
    ev.end = { dateTime: wall(d + (1 + Math.floor(rnd() * 3)) * DAY), timeZone: tz }
    if (rnd() < 0.3) ev.rrule = `RRULE:FREQ=WEEKLY;COUNT=${2 + Math.floor(rnd() * 4)}`
    return ev
  }
  // A wall-clock time in the event's own zone, as Outlook stores it.
  const start = day0 + Math.floor(rnd() * 40) * DAY + Math.floor(rnd() * 96) * 15 * 60000
  const dur = (1 + Math.floor(rnd() * 12)) * 15 * 60000
  ev.start = { dateTime: wall(start), timeZone: tz }
  ev.end = { dateTime: wall(start + dur), timeZone: tz }
  if (rnd() < 0.35) {
    ev.rrule = pick(['RRULE:FREQ=DAILY;COUNT=7', 'RRULE:FREQ=WEEKLY;BYDAY=MO,TH;COUNT=8', 'RRULE:FREQ=DAILY;INTERVAL=2', 'RRULE:FREQ=MONTHLY;COUNT=3',
      `RRULE:FREQ=WEEKLY;UNTIL=${new Date(start + 35 * DAY).toISOString().replace(/[-:]/g, '').slice(0, 15)}Z`])
  }
  return ev
}

module.exports = { googleEvent, outlookEvent, GOOGLE_ZONES, OUTLOOK_ZONES, SHOW_AS, day0, DAY, HOUR, wall }
