// One CalendarSync per server process, connected lazily from the environment (DATABASE_URL,
// GOOGLE_API_CREDENTIALS, GOOGLE_WEBHOOK_TOKEN, MS_GRAPH_CLIENT_ID, MICROSOFT_WEBHOOK_TOKEN, ...).
import { CalendarSync } from 'calsync'

const globalForCalsync = globalThis as unknown as { calsync?: Promise<CalendarSync> }

export const calsync: Promise<CalendarSync> = (globalForCalsync.calsync ??= CalendarSync.connect())
