// Every minute: hand the booking changes syncs found at Google and Outlook (two-way sync) to the
// app's booking logic, and acknowledge each one once it is handled. A change that fails stays in
// the outbox and comes back on a later run (after its 2-minute hold); one handled twice must be
// harmless, so the handler compares with the booking before acting.
import type { NextRequest } from 'next/server'
import { getCalsync } from '@/lib/calsync'
import { isCronAuthorized } from '@/lib/cron-auth'
import { applyProviderChange } from '@/lib/bookings' // the app's own: reschedule or cancel by uid

export const runtime = 'nodejs'
export const maxDuration = 60

export async function GET(req: NextRequest) {
  if (!isCronAuthorized(req)) return Response.json({ message: 'Not authenticated' }, { status: 401 })
  const sync = await getCalsync()
  let handled = 0
  let failed = 0
  try {
    for (;;) {
      const changes = await sync.takeBookingChanges({ limit: 100, holdMs: 120_000 })
      if (changes.length === 0) break
      const done: string[] = []
      for (const change of changes) {
        try {
          // { uid, start?, end?, cancelled, userId, integration, ... }
          await applyProviderChange(change)
          done.push(change.id)
        } catch {
          failed++ // left unacknowledged: handed out again once the hold ends
        }
      }
      handled += await sync.ackBookingChanges(done)
      if (done.length < changes.length) break
    }
    return Response.json({ ok: true, handled, failed })
  } catch (err: any) {
    return Response.json({ ok: false, code: err.code, message: err.message, handled }, { status: 500 })
  }
}
