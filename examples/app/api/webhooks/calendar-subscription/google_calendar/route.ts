// Google Calendar push notifications. The body is empty; everything is in X-Goog-* headers.
import { calsync } from '@/lib/calsync'

export const runtime = 'nodejs' // a native addon: not the edge runtime

export async function POST(req: Request) {
  const out = await (await calsync).handleGoogleWebhook({
    headers: Object.fromEntries(req.headers),
    body: await req.text(),
  })
  return new Response(out.body, { status: out.status, headers: out.headers })
}
