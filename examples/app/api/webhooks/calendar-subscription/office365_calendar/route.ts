// Microsoft Graph: the validation handshake (?validationToken=…) and change/lifecycle notifications.
// Graph wants an answer within seconds, so syncs run after the 202; `after` keeps a serverless
// function alive until they finish.
import { after } from 'next/server'
import { calsync } from '@/lib/calsync'

export const runtime = 'nodejs'

export async function POST(req: Request) {
  const sync = await calsync
  const out = await sync.handleMicrosoftWebhook({
    headers: Object.fromEntries(req.headers),
    query: new URL(req.url).search,
    body: await req.text(),
  })
  after(() => sync.settle())
  return new Response(out.body, { status: out.status, headers: out.headers })
}
