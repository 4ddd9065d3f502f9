// Every few minutes: subscribe newly enabled calendars, renew channels expiring within 24 h, stop
// the ones that should no longer be watched, and resync calendars notifications missed. Safe to run
// from several instances at once. Within Vercel's 300 s limit: the run starts no new work after
// 250 s and the next run continues with what is left (`complete: false`, `deferred`).
import type { NextRequest } from 'next/server'
import { getCalsync } from '@/lib/calsync'
import { isCronAuthorized } from '@/lib/cron-auth'

export const runtime = 'nodejs'
export const maxDuration = 300

export async function GET(req: NextRequest) {
  if (!isCronAuthorized(req)) return Response.json({ message: 'Not authenticated' }, { status: 401 })
  try {
    const report = await (await getCalsync()).renewWatches({ budgetMs: 250_000 })
    return Response.json({ ok: true, ...report })
  } catch (err: any) {
    return Response.json({ ok: false, code: err.code, message: err.message }, { status: 500 })
  }
}
