// Every minute: poll the calendars whose provider has no push (CalDAV, Apple iCloud). Each one whose
// last poll is older than five minutes is checked — calendars of one account with one request — and
// the changed ones are synced. A server that is down is left for the next run; its calendars read
// `sync_failed` meanwhile, so the slot page asks it live rather than take them as free.
import type { NextRequest } from 'next/server'
import { getCalsync } from '@/lib/calsync'
import { isCronAuthorized } from '@/lib/cron-auth'

export const runtime = 'nodejs'
export const maxDuration = 60

export async function GET(req: NextRequest) {
  if (!isCronAuthorized(req)) return Response.json({ message: 'Not authenticated' }, { status: 401 })
  try {
    const report = await (await getCalsync()).pollCalendars({ budgetMs: 50_000 })
    return Response.json({ ok: true, ...report })
  } catch (err: any) {
    return Response.json({ ok: false, code: err.code, message: err.message }, { status: 500 })
  }
}
