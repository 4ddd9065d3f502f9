// The check Cal.com's cron routes make: `Authorization: <CRON_API_KEY>`, `?apiKey=<CRON_API_KEY>`,
// or `Authorization: Bearer <CRON_SECRET>` (Vercel Cron). Compared in constant time.
import { timingSafeEqual } from 'node:crypto'
import type { NextRequest } from 'next/server'

function same(a: string, b: string | undefined): boolean {
  if (!b) return false
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

export function isCronAuthorized(req: NextRequest): boolean {
  const presented = req.headers.get('authorization') ?? req.nextUrl.searchParams.get('apiKey') ?? ''
  const { CRON_API_KEY, CRON_SECRET } = process.env
  // Evaluate both so the time taken does not tell which one was configured.
  const byKey = same(presented, CRON_API_KEY)
  const bySecret = same(presented, CRON_SECRET ? `Bearer ${CRON_SECRET}` : undefined)
  return byKey || bySecret
}
