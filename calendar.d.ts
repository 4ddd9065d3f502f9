// Types of calendar.js: `withCalsync`, a drop-in for Cal.com's calendar wrappers. The shapes
// restate the parts of Cal.com's `Calendar` interface (packages/types/Calendar.d.ts) it relies on.
import type { CalendarSync } from './calsync'

/** Cal.com's `CalendarFetchMode`: what a `getAvailability` call is for. */
export type CalendarFetchMode = 'slots' | 'overlay' | 'booking' | 'none'

/** The fields of Cal.com's `IntegrationCalendar` (a `SelectedCalendar`, partly) calsync reads. */
export interface CalendarToCheck {
  /** `SelectedCalendar.id`: calendars without one always go to the original calendar. */
  id?: string | null
  externalId: string
  integration: string
}

/** Cal.com's `GetAvailabilityParams`. */
export interface AvailabilityParams {
  dateFrom: string
  dateTo: string
  selectedCalendars: CalendarToCheck[]
  mode?: CalendarFetchMode
  fallbackToPrimary?: boolean
}

/** Cal.com's `EventBusyDate`. Cached blocks carry ISO-8601 UTC strings and their integration as `source`. */
export interface EventBusyDate {
  start: Date | string
  end: Date | string
  source?: string | null
  timeZone?: string
}

/** What `withCalsync` needs of a calendar service: Cal.com's `Calendar` has it. */
export interface CalendarWithAvailability {
  getAvailability(params: any): Promise<EventBusyDate[]>
  getAvailabilityWithTimeZones?(params: any): Promise<EventBusyDate[]>
}

export interface WithCalsyncOptions {
  /** The process's CalendarSync, or a function resolving to it (for example a lazy `getCalsync`). */
  calsync: CalendarSync | (() => Promise<CalendarSync>)
  /** The fetch modes answered from the cache (default `['slots']`, as Cal.com's own cache). */
  modes?: CalendarFetchMode[]
  /** Called when calsync gives no answer (the original calendar then answers for every calendar). */
  onFallback?: (error: unknown) => void
}

/**
 * The calendar service with its busy times taken from calsync's cache: for a call in one of
 * `modes`, the calendars calsync serves are read from the cache and the original is asked once,
 * for exactly the others (none: not at all). Every other method is the original's. calsync failing
 * is never an answer of "free": the original is asked for every calendar then.
 */
export declare function withCalsync<C extends CalendarWithAvailability>(originalCalendar: C, options: WithCalsyncOptions): C
