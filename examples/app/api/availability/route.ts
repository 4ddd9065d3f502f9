// Cached busy times over HTTP (for a slot computation that runs elsewhere, or to look at the cache):
// POST { selectedCalendarIds, timeMin, timeMax } → { busy, served, uncached }.
import { getCalsync } from '@/lib/calsync' // the process's one instance: one pool, one set of metrics

export const runtime = 'nodejs'

export async function POST(req: Request) {
  try {
    return Response.json(await (await getCalsync()).getCachedAvailability(await req.json()))
  } catch (err: any) {
    const status = err.code === 'INVALID_ARGUMENT' || err instanceof SyntaxError ? 400 : 503
    return Response.json({ code: err.code ?? 'INVALID_ARGUMENT', message: err.message }, { status })
  }
}
