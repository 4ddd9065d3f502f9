// Prometheus scrape endpoint: calsync's metrics in the text exposition format, for a scraper that
// presents `Authorization: Bearer <METRICS_TOKEN>` (compared in constant time). Each server
// instance reports its own counters; scrape every instance.
import { timingSafeEqual } from 'node:crypto'
import type { NextRequest } from 'next/server'
import { getCalsync } from '@/lib/calsync'

export const runtime = 'nodejs'
export const dynamic = 'force-dynamic'

function authorized(req: NextRequest): boolean {
  const token = process.env.METRICS_TOKEN
  if (!token) return false // no token configured: the endpoint stays closed
  const presented = Buffer.from(req.headers.get('authorization') ?? '')
  const expected = Buffer.from(`Bearer ${token}`)
  return presented.length === expected.length && timingSafeEqual(presented, expected)
}

export async function GET(req: NextRequest) {
  if (!authorized(req)) return new Response('Not authenticated\n', { status: 401 })
  try {
    const body = await (await getCalsync()).metrics()
    return new Response(body, { headers: { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' } })
  } catch (err: any) {
    return new Response(`${err.code ?? 'ERROR'}\n`, { status: 503 })
  }
}
