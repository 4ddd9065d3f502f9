// Google Calendar push notifications. The body is empty; everything is in X-Goog-* headers. The
// answer comes once the channel is checked; the sync runs after it, and `after` keeps a serverless
// function alive until it finishes.
import { after } from 'next/server'
import { getCalsync } from '@/lib/calsync'

export const runtime = 'nodejs' // a native addon: not the edge runtime

export async function POST(req: Request) {
  // No database yet (a connect that failed is retried by the next request): 503, so the provider
  // delivers the notification again.
  const sync = await getCalsync().catch(() => null)
  if (!sync) return Response.json({ status: 'unavailable' }, { status: 503 })
  const out = await sync.handleGoogleWebhook({
    headers: Object.fromEntries(req.headers),
    body: await req.text(),
  })
  after(() => sync.settle())
  return new Response(out.body, { status: out.status, headers: out.headers })
}
