// Daily: delete cached events that are over, events of calendars no longer watched, and expired
// rows of the legacy JSON cache, in short batches.
import type { NextRequest } from 'next/server'
import { getCalsync } from '@/lib/calsync'
import { isCronAuthorized } from '@/lib/cron-auth'

export const runtime = 'nodejs'
export const maxDuration = 300

export async function GET(req: NextRequest) {
  if (!isCronAuthorized(req)) return Response.json({ message: 'Not authenticated' }, { status: 401 })
  try {
    return Response.json({ ok: true, ...(await (await getCalsync()).cleanup()) })
  } catch (err: any) {
    return Response.json({ ok: false, code: err.code, message: err.message }, { status: 500 })
  }
}
