#!/usr/bin/env node
'use strict'
// The calsync command line: `npx calsync <command>`.

const fs = require('node:fs')
const path = require('node:path')

const HELP = `Usage: calsync <command> [options]

Commands:
  schema [--no-calcom]   Apply calsync's SQL to DATABASE_URL: the Cal.com tables it uses (skip with
                         --no-calcom against a real Cal.com database, where Prisma owns them) and
                         calsync's own tables and read functions. Safe to re-run.
  demo                   The main job end to end on a throwaway database (DATABASE_URL's server, or
                         an embedded Postgres) and the emulator: subscribe a Google calendar, change
                         events at "Google" and "Outlook", print the availability the app gets.
  emulator [--port N]    Run the provider emulator (Google Calendar API, Microsoft Graph, OAuth, push
                         notifications) until interrupted; point the provider URL options at it.
                         Drive it over HTTP: GET /emulator lists its control routes (accounts,
                         calendars, events, faults, the clock).
  renew [--json]         The cron pass: subscribe, renew, share and stop channels, then resync
                         calendars the safety net finds behind. Shows progress on stderr.
  poll [--json]          Poll the CalDAV and Apple iCloud calendars that are due (one request per
                         account when nothing changed) and sync the changed ones.
  cleanup [--json]       Delete ended and unwatched cached events and expired legacy cache rows.
  status [--json]        Calendars by provider and health (healthy, expiring, failing, stale,
                         unsubscribed; polled ones: healthy, failing, stale, unpolled), changes announced but not synced yet, booking changes
                         waiting for the app.
  metrics                Print this process's metrics in the Prometheus text format (the gauges
                         are read from the database; the counters start at zero).
  sync <id> [--full] [--json]
                         Sync the calendar of SelectedCalendar row <id> now.
  migrate status [--json]
                         Where the move from the legacy JSON cache ("CalendarCache") stands: users
                         with legacy rows, how many write it from syncs and read from SQL, rows,
                         teams with migration flags, the latest differences shadow reads found.
  migrate verify [--user ID | --team ID] [--json]
                         Compare the legacy JSON cache with the SQL cache, per legacy row: equal,
                         diverged (each differing interval), or not comparable (why). Exits 1 when
                         any row diverged.
  migrate cleanup [--json]
                         The last stage: delete every legacy row, once every user who has any
                         reads from the SQL cache (refused, deleting nothing, otherwise).
  help                   Show this text.

Environment: DATABASE_URL and the provider settings of the README (GOOGLE_API_CREDENTIALS,
GOOGLE_WEBHOOK_TOKEN, MS_GRAPH_CLIENT_ID, MICROSOFT_WEBHOOK_TOKEN, ...).`

/** Runs `fn(sync)` against a CalendarSync connected from the environment. */
async function withSync(fn) {
  const { CalendarSync } = require('./calsync.js')
  const sync = await CalendarSync.connect()
  try {
    return await fn(sync)
  } finally {
    await sync.close()
  }
}

function print(json, value, text) {
  console.log(json ? JSON.stringify(value, null, 2) : text(value))
}

function table(rows, columns) {
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c]).length)))
  const line = (cells) => cells.map((x, i) => String(x).padEnd(widths[i])).join('  ')
  return [line(columns), line(widths.map((w) => '-'.repeat(w))), ...rows.map((r) => line(columns.map((c) => r[c])))].join('\n')
}

async function main(argv) {
  const [command, ...rest] = argv
  const json = rest.includes('--json')
  switch (command) {
    case 'renew':
      return withSync(async (sync) => {
        const started = Date.now()
        const tick = setInterval(() => {
          const { done, total } = sync.progress()
          if (total > 0) process.stderr.write(`${process.stderr.isTTY ? '\r' : ''}renewing: ${done}/${total} calendars${process.stderr.isTTY ? '' : '\n'}`)
        }, process.stderr.isTTY ? 250 : 2000)
        try {
          const report = await sync.renewWatches()
          if (process.stderr.isTTY) process.stderr.write('\n')
          print(json, report, (r) => `${Object.entries(r).map(([k, v]) => `${k}: ${v}`).join('\n')}\n(${((Date.now() - started) / 1000).toFixed(1)} s)`)
          return report.failed > 0 ? 1 : 0
        } finally {
          clearInterval(tick)
        }
      })
    case 'poll':
      return withSync(async (sync) => {
        const started = Date.now()
        const report = await sync.pollCalendars()
        print(json, report, (r) => `${Object.entries(r).map(([k, v]) => `${k}: ${v}`).join('\n')}\n(${((Date.now() - started) / 1000).toFixed(1)} s)`)
        return report.failed > 0 ? 1 : 0
      })
    case 'cleanup':
      return withSync(async (sync) => {
        const report = await sync.cleanup()
        print(json, report, (r) => Object.entries(r).map(([k, v]) => `${k}: ${v}`).join('\n'))
        return 0
      })
    case 'status':
      return withSync(async (sync) => {
        const rows = await sync.status()
        print(json, rows, (r) => (r.length ? table(r.map((x) => ({ ...x, reason: x.reason ?? '' })), ['integration', 'health', 'reason', 'calendars']) : 'no calendars of a provider calsync syncs are selected'))
        if (!json) {
          // The gauges of `calsync metrics`, at a glance.
          const text = await sync.metrics()
          const value = (series) => Number(new RegExp(`^${series.replace(/[{}"]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1] ?? 0)
          console.log(`changes announced, not yet synced: ${value('calsync_pending_notifications')}`)
          console.log(`booking changes waiting for the app: ${value('calsync_booking_changes_waiting{state="ready"}')} ready, ${value('calsync_booking_changes_waiting{state="held"}')} held by a taker`)
        }
        return 0
      })
    case 'metrics':
      return withSync(async (sync) => {
        process.stdout.write(await sync.metrics())
        return 0
      })
    case 'sync': {
      const id = rest.find((a) => !a.startsWith('--'))
      if (!id) throw Object.assign(new Error('usage: calsync sync <selectedCalendarId> [--full]'), { code: 'INVALID_ARGUMENT' })
      return withSync(async (sync) => {
        const report = await sync.syncCalendar(id, { full: rest.includes('--full') })
        print(json, report, (r) => `${r.full ? `full sync (${r.fullReason})` : 'incremental sync'}: ${r.pages} page(s), ${r.upserted} upserted, ${r.deleted} deleted`)
        return 0
      })
    }
    case 'migrate': {
      if (rest[0] === 'status') {
        return withSync(async (sync) => {
          const st = await sync.legacyCacheStage()
          print(json, st, (x) => [
            `users with legacy rows: ${x.users}`,
            `  writing them from syncs (calendar-cache-sql-write): ${x.writing}`,
            `  reading from the SQL cache (calendar-cache-sql):    ${x.readingSql}`,
            `legacy rows: ${x.liveRows} live, ${x.expiredRows} expired`,
            ...x.teams.map((t) => `team ${t.teamId}: write ${t.writing ? 'on' : 'off'}, read from SQL ${t.readingSql ? 'on' : 'off'}`),
            `differences recorded by shadow reads (last 30 days): ${x.divergences}`,
            ...x.lastDivergences.map((d) => `  ${d.lastSeenAt} ${d.kind} calendar ${d.selectedCalendarId} ${d.start} .. ${d.end} (served: ${d.served})`),
          ].join('\n'))
          return 0
        })
      }
      if (rest[0] === 'cleanup') {
        return withSync(async (sync) => {
          process.stderr.write('deleting the legacy cache rows…\n')
          const deleted = await sync.dropLegacyCache()
          print(json, { deleted }, (x) => `deleted ${x.deleted} legacy cache rows`)
          return 0
        })
      }
      if (rest[0] !== 'verify') throw Object.assign(new Error('usage: calsync migrate status | verify [--user ID | --team ID] | cleanup [--json]'), { code: 'INVALID_ARGUMENT' })
      const option = (name) => {
        const i = rest.indexOf(name)
        if (i < 0) return undefined
        const n = Number(rest[i + 1])
        if (!Number.isInteger(n) || n <= 0) throw Object.assign(new Error(`${name} takes a positive integer id`), { code: 'INVALID_ARGUMENT' })
        return n
      }
      const scope = { userId: option('--user'), teamId: option('--team') }
      return withSync(async (sync) => {
        process.stderr.write('comparing the legacy cache with the SQL cache…\n')
        const verdicts = await sync.verifyLegacyCache(scope)
        print(json, verdicts, (list) => {
          if (!list.length) return 'no live legacy cache rows'
          const count = (state) => list.filter((v) => v.state === state).length
          const lines = list.flatMap((v) => [
            `credential ${v.credentialId} (user ${v.userId ?? '?'}): ${v.state}${v.reason ? ` (${v.reason})` : ''}`,
            ...v.divergences.map((d) => `  ${d.kind} ${d.calendar} ${d.start} .. ${d.end}`),
          ])
          return [...lines, `${list.length} rows: ${count('equal')} equal, ${count('diverged')} diverged, ${count('not_comparable')} not comparable`].join('\n')
        })
        return verdicts.some((v) => v.state === 'diverged') ? 1 : 0
      })
    }
    case 'schema': {
      const { applySchema } = require('./calsync.js')
      const calcom = !rest.includes('--no-calcom')
      const calcomTables = await applySchema({ calcom })
      // The tables named from the SQL applied, so that the message cannot fall behind it.
      const sql = fs.readFileSync(path.join(__dirname, 'sql', 'calsync.sql'), 'utf8')
      const tables = [...sql.matchAll(/CREATE (?:UNLOGGED )?TABLE IF NOT EXISTS "(\w+)"/g)].map((m) => m[1]).join(', ')
      const own = `calsync's own tables (${tables}) where missing, and its read functions.`
      console.log(
        {
          created: `Created the Cal.com tables calsync uses (empty database) and ${own}`,
          existing: `Found Cal.com's tables and left them untouched; created ${own}`,
          not_requested: `Created ${own}`,
        }[calcomTables],
      )
      return 0
    }
    case 'emulator': {
      const { startEmulator } = require('./emulator')
      const i = rest.indexOf('--port')
      const port = i >= 0 ? Number(rest[i + 1]) : 8973
      if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error('--port takes a port number')
      const emu = await startEmulator({ port })
      console.log(`calsync emulator listening on ${emu.url}`)
      console.log(`  googleApiUrl:   ${emu.url}/calendar/v3`)
      console.log(`  googleTokenUrl: ${emu.url}/token`)
      console.log(`  microsoftApiUrl:   ${emu.url}/v1.0`)
      console.log(`  microsoftTokenUrl: ${emu.url}/common/oauth2/v2.0/token`)
      await new Promise((resolve) => process.once('SIGINT', resolve).once('SIGTERM', resolve))
      await emu.close()
      return 0
    }
    case 'demo':
      await require('./dev/demo.js').run({ log: console.log })
      return 0
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      console.log(HELP)
      return 0
    default:
      console.error(`calsync: unknown command '${command}'\n\n${HELP}`)
      return 2
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (err) => {
    console.error(`calsync: ${err.code ? `[${err.code}] ` : ''}${err.message}`)
    process.exitCode = 1
  },
)
