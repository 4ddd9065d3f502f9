// Types of the package entry: everything index.d.ts (generated) declares, the read's answer (built
// in calsync.js from the binding's compact form), and the error shape.
import { CalendarSync as NativeCalendarSync, AvailabilityArgs, ConnectOptions, ShadowResult, UncachedCalendar } from './index'
export * from './index'
export { withCalsync, WithCalsyncOptions, CalendarWithAvailability, AvailabilityParams, CalendarToCheck, EventBusyDate, CalendarFetchMode } from './calendar'

/**
 * A busy interval from the cache. Overlapping and touching events of one calendar are merged and
 * clipped to the requested range, as a provider's free/busy answer is.
 */
export interface BusyBlock {
  /** Start, ISO-8601 UTC with milliseconds (`2026-01-01T09:00:00.000Z`). */
  start: string
  /** End (exclusive), ISO-8601 UTC with milliseconds. */
  end: string
  /** The requested `SelectedCalendar.id` this block belongs to. */
  selectedCalendarId: string
  /** The integration it came from. */
  source: 'google_calendar' | 'office365_calendar' | string
}

/** The answer of `getCachedAvailability`. */
export interface AvailabilityResult {
  /** Busy blocks of the served calendars, sorted by start. */
  busy: BusyBlock[]
  /** Requested ids answered from the cache. */
  served: string[]
  /** Requested ids not answered, each with a machine-readable reason: call the provider live. */
  uncached: UncachedCalendar[]
  /**
   * The server that answered: `primary`, or `replica` (a `readDatabaseUrl` within
   * `maxReplicaLagMs` that had replayed this process's syncs of the calendars read).
   */
  servedBy: 'primary' | 'replica'
  /** With `legacyReads` on: the served ids answered from Cal.com's legacy JSON cache. */
  servedFromLegacy?: string[]
  /** With `legacyReads: 'shadow'`: what comparing the served calendars with the other source found. */
  shadow?: ShadowResult
}

export declare class CalendarSync extends NativeCalendarSync {
  /** Connects (see index.d.ts); resolves to this class. */
  static connect(options?: ConnectOptions | undefined | null): Promise<CalendarSync>
  /**
   * Busy blocks from the cache for `[timeMin, timeMax)`. Calendars the cache cannot answer for
   * truthfully are listed in `uncached` with a reason, never answered as free. One SQL round trip
   * when the flags are cached. Rejects with `INVALID_ARGUMENT` for bad input, `DB_UNAVAILABLE` when
   * the database cannot be reached or gives no answer within `readTimeoutMs`.
   */
  getCachedAvailability(args: AvailabilityArgs): Promise<AvailabilityResult>
}

/** Stable codes of errors thrown by calsync (`err.code`). */
export type CalsyncErrorCode =
  | 'DB_UNAVAILABLE'
  | 'SCHEMA_MISMATCH'
  | 'INVALID_ARGUMENT'
  | 'NOT_FOUND'
  | 'PROVIDER_AUTH'
  | 'PROVIDER_CONFIG'
  | 'PROVIDER_UNAVAILABLE'
  | 'CLOSED'
  | 'DB_ERROR'
  /** Thrown by `require('calsync')` itself: this platform's package (calsync-<platform>) is not installed. */
  | 'NATIVE_BINDING_MISSING'

/** An error thrown or rejected by calsync. Messages never contain secrets. */
export interface CalsyncError extends Error {
  code: CalsyncErrorCode
}
