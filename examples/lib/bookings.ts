// The app's side of two-way sync, as the booking-changes route calls it: reschedule or cancel the
// booking a change names. Here it only checks the change; a Cal.com app looks the booking up by
// `uid` and applies the new times or the cancellation if they differ from what it has (a change can
// arrive more than once).
import type { BookingChange } from 'calsync'

export async function applyProviderChange(change: BookingChange): Promise<void> {
  if (!change.cancelled && (!change.start || !change.end)) {
    throw new Error(`booking ${change.uid}: a change without times must be a cancellation`)
  }
}
