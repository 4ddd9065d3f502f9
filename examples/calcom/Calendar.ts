// Cal.com's calendar service interface (packages/types/Calendar.d.ts), restated with the types its
// methods take that calsync does not look into left opaque, so that `npx tsc -p examples` checks
// `withCalsync` against the interface as Cal.com declares it.
type CalendarEvent = { type: string; title: string; startTime: string; endTime: string; [key: string]: unknown }
type CalendarServiceEvent = CalendarEvent & { calendarDescription: string }
type NewCalendarEventType = { uid: string; id: string; type: string; password: string; url: string; additionalInfo: Record<string, unknown> }

export type EventBusyDate = {
  start: Date | string
  end: Date | string
  source?: string | null
  timeZone?: string
}

export interface IntegrationCalendar {
  id?: string
  externalId: string
  integration: string
  userId?: number
  credentialId?: number | null
  eventTypeId?: number | null
  primary?: boolean
  name?: string
  readOnly?: boolean
  email?: string
}

export type CalendarFetchMode = 'slots' | 'overlay' | 'booking' | 'none'

export interface GetAvailabilityParams {
  dateFrom: string
  dateTo: string
  selectedCalendars: IntegrationCalendar[]
  mode: CalendarFetchMode
  fallbackToPrimary?: boolean
}

export interface Calendar {
  getCredentialId?(): number
  createEvent(event: CalendarServiceEvent, credentialId: number, externalCalendarId?: string): Promise<NewCalendarEventType>
  updateEvent(uid: string, event: CalendarServiceEvent, externalCalendarId?: string | null): Promise<NewCalendarEventType | NewCalendarEventType[]>
  deleteEvent(uid: string, event: CalendarEvent, externalCalendarId?: string | null): Promise<unknown>
  getAvailability(params: GetAvailabilityParams): Promise<EventBusyDate[]>
  getAvailabilityWithTimeZones?(params: GetAvailabilityParams): Promise<EventBusyDate[]>
  fetchAvailabilityAndSetCache?(selectedCalendars: IntegrationCalendar[]): Promise<unknown>
  listCalendars(event?: CalendarEvent): Promise<IntegrationCalendar[]>
  testDelegationCredentialSetup?(): Promise<boolean>
}
