// In the slot computation: busy times from the cache, and a live provider call only for the
// calendars the cache cannot vouch for.
import { getCalsync } from '@/lib/calsync'

type Busy = { start: string; end: string }

export async function busyTimes(
  selectedCalendarIds: string[],
  dateFrom: Date,
  dateTo: Date,
  fetchLive: (selectedCalendarId: string) => Promise<Busy[]>,
): Promise<Busy[]> {
  const { busy, uncached } = await (await getCalsync()).getCachedAvailability({
    selectedCalendarIds,
    timeMin: dateFrom.toISOString(),
    timeMax: dateTo.toISOString(),
  })
  const live = await Promise.all(uncached.map(({ id }) => fetchLive(id)))
  return [...busy, ...live.flat()]
}
