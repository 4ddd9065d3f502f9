// Microsoft Graph: the validation handshake (?validationToken=…) and change/lifecycle notifications.
// Graph wants an answer within seconds, so syncs run after the 202; `after` keeps a serverless
// function alive until they finish.
import { after } from 'next/server'
import { getCalsync } from '@/lib/calsync'

export const runtime = 'nodejs'

export async function POST(req: Request) {
  // No database yet (a connect that failed is retried by the next request): 503, so the provider
  // delivers the notification again.
  const sync = await getCalsync().catch(() => null)
  if (!sync) return Response.json({ status: 'unavailable' }, { status: 503 })
  const out = await sync.handleMicrosoftWebhook({
    headers: Object.fromEntries(req.headers),
    query: new URL(req.url).search,
    body: await req.text(),
  })
  after(() => sync.settle())
  return new Response(out.body, { status: out.status, headers: out.headers })
}
