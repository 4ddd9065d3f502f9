'use strict'
// The emulator in a process of its own for benchmarks, driven over IPC, so its CPU and memory are
// not counted against calsync.
const { startEmulator } = require('../emulator')

let emu
// The emulator's own garbage-collection pauses, when tracing freshness (bench/run.js).
const gc = process.env.BENCH_TRACE_FRESHNESS ? require('./gc-pauses').watchGcPauses() : null
const DAY = 24 * 3600 * 1000

const commands = {
  async start() {
    emu = await startEmulator()
    return { url: emu.url }
  },
  googleAccount: () => emu.google.addAccount(),
  googleCalendars({ ids, timeZone = 'UTC' }) {
    for (const id of ids) emu.google.createCalendar(id, { timeZone })
    return ids.length
  },
  /** `count` one-hour events spread over `days` days from tomorrow. */
  async seedGoogle({ calendarId, count, days = 150, offset = 0 }) {
    const day0 = Math.ceil(Date.now() / DAY) * DAY
    for (let i = 0; i < count; i++) {
      const start = day0 + ((i * 7919 + offset) % (days * 24)) * 3600 * 1000
      await emu.google.insertEvent(calendarId, {
        summary: `event ${i}`, description: 'x'.repeat(40), location: 'Room 4',
        start: { dateTime: new Date(start).toISOString() }, end: { dateTime: new Date(start + 3600 * 1000).toISOString() },
      }, { notify: false })
    }
    return count
  },
  /**
   * One 30-minute event at `startMs` on a quiet calendar, then its notification: resolves once the
   * receiver answered, with the instants the notification was sent and answered (this process's
   * high-resolution clock, comparable across processes) and the emulator's service time before it.
   */
  async changeAndNotify({ calendarId, startMs }) {
    await emu.google.insertEvent(calendarId, {
      summary: 'change', start: { dateTime: new Date(startMs).toISOString() }, end: { dateTime: new Date(startMs + 1800 * 1000).toISOString() },
    }, { notify: false })
    const serviceBefore = emu.serviceTime()
    const sentAt = performance.timeOrigin + performance.now()
    await emu.google.notifyCalendar(emu.google.calendar(calendarId))
    return { sentAt, answeredAt: performance.timeOrigin + performance.now(), serviceBefore }
  },
  serviceTime: () => emu.serviceTime(),
  /** Milliseconds this process spent collecting garbage between `from` and `to`. */
  gcPauses: ({ from, to }) => (gc ? gc.pausedMs(from, to) : 0),
  latency({ endpoints, ms }) {
    for (const endpoint of endpoints) emu.inject({ endpoint, latencyMs: ms, times: 1e9 })
    return true
  },
  clearFaults: () => emu.clearFaults(),
  counter: ({ name }) => emu.counter(name),
  freeBusy: ({ calendarId, timeMin, timeMax }) => emu.google.freeBusyOf(calendarId, timeMin, timeMax),
  async stop() {
    await emu.close()
    setImmediate(() => process.exit(0))
    return true
  },
}

process.on('message', async ({ id, cmd, args }) => {
  try {
    process.send({ id, ok: true, value: await commands[cmd](args ?? {}) })
  } catch (e) {
    process.send({ id, ok: false, error: e.stack })
  }
})
