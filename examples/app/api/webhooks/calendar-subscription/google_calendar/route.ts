// Google Calendar push notifications. The body is empty; everything is in X-Goog-* headers. The
// answer comes once the channel is checked; the sync runs after it, and `after` keeps a serverless
// function alive until it finishes.
import { after } from 'next/server'
import { calsync } from '@/lib/calsync'

export const runtime = 'nodejs' // a native addon: not the edge runtime

export async function POST(req: Request) {
  const sync = await calsync
  const out = await sync.handleGoogleWebhook({
    headers: Object.fromEntries(req.headers),
    body: await req.text(),
  })
  after(() => sync.settle())
  return new Response(out.body, { status: out.status, headers: out.headers })
}
