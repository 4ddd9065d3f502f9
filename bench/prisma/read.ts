// The read baseline as Cal.com runs it: Prisma 7 (prisma-client generator, @prisma/adapter-pg)
// finding the cached events of the calendars in the range, mapped to { start, end, timeZone }.
// Runs in a child process under tsx, driven over IPC by bench/run.js; it times itself the way the
// parent times the other contenders.
import { PrismaPg } from '@prisma/adapter-pg'
import { PrismaClient } from './generated/client.ts'

type Args = { url: string; ids: string[]; timeMin: string; timeMax: string; calls: number; warmup: number; throughputMs: number; callers: number }

async function measure(a: Args) {
  const prisma = new PrismaClient({ adapter: new PrismaPg({ connectionString: a.url, max: a.callers }) })
  const start = new Date(a.timeMin)
  const end = new Date(a.timeMax)
  const read = async () => {
    const rows = await prisma.calendarCacheEvent.findMany({
      where: { selectedCalendarId: { in: a.ids }, start: { lt: end }, end: { gt: start }, status: { not: 'cancelled' } },
      select: { start: true, end: true, timeZone: true },
    })
    return rows.map((e) => ({ start: e.start.toISOString(), end: e.end.toISOString(), timeZone: e.timeZone }))
  }
  try {
    const rows = (await read()).length
    for (let i = 0; i < a.warmup; i++) await read()
    const times: number[] = []
    for (let i = 0; i < a.calls; i++) {
      const t = process.hrtime.bigint()
      await read()
      times.push(Number(process.hrtime.bigint() - t) / 1e6)
    }
    times.sort((x, y) => x - y)
    const at = (p: number) => times[Math.min(times.length - 1, Math.floor((p / 100) * times.length))]
    let calls = 0
    const until = Date.now() + a.throughputMs
    await Promise.all(Array.from({ length: a.callers }, async () => {
      while (Date.now() < until) {
        await read()
        calls++
      }
    }))
    return { rows, p50: at(50), p99: at(99), throughput: calls / (a.throughputMs / 1000) }
  } finally {
    await prisma.$disconnect()
  }
}

process.on('message', async (a: Args) => {
  try {
    process.send!({ ok: true, value: await measure(a) })
  } catch (e) {
    process.send!({ ok: false, error: String((e as Error).stack ?? e) })
  }
})
