// One CalendarSync per server process, connected on first use from the environment (DATABASE_URL,
// GOOGLE_API_CREDENTIALS, GOOGLE_WEBHOOK_TOKEN, MS_GRAPH_CLIENT_ID, MICROSOFT_WEBHOOK_TOKEN, ...).
// Never at import: `next build` loads route modules and must not open database connections.
import { CalendarSync } from 'calsync'

const globalForCalsync = globalThis as unknown as { calsync?: Promise<CalendarSync> }

/**
 * The process's CalendarSync. A connect that failed (Postgres unreachable at the first request) is
 * forgotten, so the next request tries again instead of failing until a restart.
 */
export function getCalsync(): Promise<CalendarSync> {
  const pending = (globalForCalsync.calsync ??= CalendarSync.connect())
  pending.catch(() => {
    if (globalForCalsync.calsync === pending) globalForCalsync.calsync = undefined
  })
  return pending
}
