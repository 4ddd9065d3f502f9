// The one change in a Cal.com app: where it builds a calendar service for a credential (Cal.com's
// `getCalendar` in packages/app-store/_utils/getCalendar.ts), wrap the service. Slot computations
// then read the calendars calsync vouches for from its cache and ask the provider only for the rest.
import { withCalsync } from 'calsync'
import type { Calendar } from '@/calcom/Calendar'
import { getCalsync } from '@/lib/calsync'

export function cachedCalendar(calendar: Calendar): Calendar {
  return withCalsync(calendar, { calsync: getCalsync })
}

