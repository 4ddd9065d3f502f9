#!/usr/bin/env node
'use strict'
// The calsync command line: `npx calsync <command>`.

const HELP = `Usage: calsync <command> [options]

Commands:
  schema [--no-calcom]   Apply calsync's SQL to DATABASE_URL: the Cal.com tables it uses (skip with
                         --no-calcom against a real Cal.com database, where Prisma owns them) and
                         calsync's own "CalendarSyncState" table. Safe to re-run.
  demo                   The main job end to end on a throwaway database (DATABASE_URL's server, or
                         an embedded Postgres) and the emulator: subscribe a Google calendar, change
                         events at "Google" and "Outlook", print the availability the app gets.
  emulator [--port N]    Run the provider emulator (Google Calendar API, Microsoft Graph, OAuth, push
                         notifications) until interrupted; point the provider URL options at it.
  help                   Show this text.

Environment: DATABASE_URL (Postgres connection string).`

async function main(argv) {
  const [command, ...rest] = argv
  switch (command) {
    case 'schema': {
      const { applySchema } = require('./calsync.js')
      const calcom = !rest.includes('--no-calcom')
      await applySchema({ calcom })
      console.log(calcom ? 'Applied the Cal.com subset and calsync\'s table.' : 'Applied calsync\'s table.')
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
