//! Option and result objects as JS sees them. Doc comments become the TypeScript docs.

use napi::bindgen_prelude::Uint32Array;
use napi_derive::napi;

use crate::cache::Answer;
use crate::db::outbox::{Found, Queued};
use crate::sync::channels::Subscribed;
use crate::sync::SyncReport;
use crate::time::format_utc;
use crate::webhook::Response;

pub use super::options::*;
pub use super::reports::*;

/// Arguments of `getCachedAvailability`: either `selectedCalendarIds`, or `userId` (the user's own
/// calendars, or those selected for `eventTypeId`), and a half-open range `[timeMin, timeMax)`.
#[napi(object, object_to_js = false)]
pub struct AvailabilityArgs {
    /// `SelectedCalendar.id` values. Rows for the same provider calendar are answered once.
    pub selected_calendar_ids: Option<Vec<String>>,
    /// A user whose selected calendars to read (instead of `selectedCalendarIds`).
    pub user_id: Option<i32>,
    /// With `userId`: the event type whose calendars to read; omitted = the user-level calendars.
    pub event_type_id: Option<i32>,
    /// Range start, ISO-8601 with an offset (for example `2026-01-01T00:00:00Z`).
    pub time_min: String,
    /// Range end (exclusive), ISO-8601 with an offset; must be after `timeMin`.
    pub time_max: String,
}

/// A calendar the cache cannot answer for truthfully; call the provider live for it.
#[napi(object)]
pub struct UncachedCalendar {
    /// The requested `SelectedCalendar.id`.
    pub id: String,
    /// Why it is not served from the cache.
    #[napi(
        ts_type = "'not_found' | 'unsupported_provider' | 'flag_off' | 'credential_invalid' | 'not_subscribed' | 'never_synced' | 'sync_failed' | 'stale' | 'out_of_window' | 'legacy_miss' | 'legacy_unreadable'"
    )]
    pub reason: String,
}

/// The answer of `getCachedAvailability` in the compact form it crosses the binding in; calsync.js
/// expands it into `{ busy: [{ start, end, selectedCalendarId, source }], served, uncached }`.
/// Creating hundreds of small objects property by property through N-API costs more than the read
/// itself; JavaScript builds them from these few values at a fraction of that.
#[napi(object)]
pub struct PackedAvailability {
    /// Start and end of every busy block, ISO-8601 UTC with milliseconds, joined by commas
    /// (`start0,end0,start1,end1,…`), sorted by start.
    pub times: String,
    /// For each busy block, its index into `calendars` and `sources`.
    pub calendar: Uint32Array,
    /// The requested `SelectedCalendar.id` values that have blocks.
    pub calendars: Vec<String>,
    /// The integration of each of `calendars`: `google_calendar` or `office365_calendar`.
    pub sources: Vec<String>,
    /// Requested ids answered from the cache.
    pub served: Vec<String>,
    /// Requested ids not answered, each with a machine-readable reason.
    pub uncached: Vec<UncachedCalendar>,
    /// With `legacyReads` on: the served ids answered from the legacy JSON cache.
    pub served_from_legacy: Option<Vec<String>>,
    /// With `legacyReads: 'shadow'`: what comparing the served calendars with the other source found.
    pub shadow: Option<ShadowResult>,
    /// The server that answered: `primary`, or `replica` (a `readDatabaseUrl` within
    /// `maxReplicaLagMs`).
    #[napi(ts_type = "'primary' | 'replica'")]
    pub served_by: String,
}

/// What a shadow read found (`legacyReads: 'shadow'`).
#[napi(object)]
pub struct ShadowResult {
    /// Calendars both sources answered for.
    pub compared: u32,
    /// Of those, calendars whose answers differ.
    pub diverged: u32,
    /// Calendars the source not served could not answer for.
    pub not_comparable: u32,
    /// Each difference: the calendar and the interval, never event contents.
    pub divergences: Vec<ShadowDivergence>,
}

/// One interval where the legacy JSON cache and the SQL cache disagree for a calendar, from now on.
#[napi(object)]
pub struct ShadowDivergence {
    /// The requested `SelectedCalendar.id`.
    pub selected_calendar_id: String,
    /// `missing_block`: busy in the SQL cache, free in the legacy row; `extra_block`: the other way
    /// round; `different_bounds`: busy in both, with another start or end.
    #[napi(ts_type = "'missing_block' | 'extra_block' | 'different_bounds'")]
    pub kind: String,
    pub start: String,
    pub end: String,
    /// The source the read served.
    #[napi(ts_type = "'sql' | 'legacy'")]
    pub served: String,
}

impl From<Answer> for PackedAvailability {
    fn from(a: Answer) -> Self {
        let mut times = String::with_capacity(a.busy.len() * 50);
        let mut calendar = Vec::with_capacity(a.busy.len());
        let mut calendars: Vec<String> = Vec::new();
        let mut sources: Vec<String> = Vec::new();
        let mut index_of: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
        for b in a.busy {
            if !times.is_empty() {
                times.push(',');
            }
            times.push_str(&b.start);
            times.push(',');
            times.push_str(&b.end);
            let next = calendars.len() as u32;
            let index = *index_of.entry(b.selected_calendar_id).or_insert_with_key(|id| {
                calendars.push(id.clone());
                sources.push(b.source);
                next
            });
            calendar.push(index);
        }
        PackedAvailability {
            times,
            calendar: calendar.into(),
            calendars,
            sources,
            served: a.served,
            uncached: a
                .uncached
                .into_iter()
                .map(|(id, reason)| UncachedCalendar {
                    id,
                    reason: reason.as_str().to_string(),
                })
                .collect(),
            served_from_legacy: a.legacy_served,
            served_by: if a.by_replica { "replica" } else { "primary" }.to_string(),
            shadow: a.shadow.map(|r| ShadowResult {
                compared: r.compared,
                diverged: r.diverged,
                not_comparable: r.not_comparable,
                divergences: r
                    .divergences
                    .into_iter()
                    .map(|(served, d)| ShadowDivergence {
                        selected_calendar_id: d.calendar,
                        kind: d.kind.to_string(),
                        start: d.start,
                        end: d.end,
                        served: served.to_string(),
                    })
                    .collect(),
            }),
        }
    }
}

/// Whom `isFeatureEnabled` evaluates a flag for: exactly one of `userId` or `teamId`.
#[napi(object, object_to_js = false)]
pub struct FlagTarget {
    /// A `users.id`.
    pub user_id: Option<i32>,
    /// A `Team.id` (team or organization).
    pub team_id: Option<i32>,
}

/// Options of `applySchema`.
#[napi(object, object_to_js = false)]
pub struct SchemaOptions {
    /// Postgres connection string. Default: `DATABASE_URL`.
    pub database_url: Option<String>,
    /// Also create the Cal.com tables calsync uses (for tests, demos and new installs). Default
    /// true; pass false against a Cal.com database, where Prisma owns those tables.
    pub calcom: Option<bool>,
}

/// What the webhook route sends back verbatim.
#[napi(object)]
pub struct WebhookResponse {
    /// HTTP status: 200 handled or ignored, 202 accepted, 4xx rejected, 503 database unavailable.
    pub status: u32,
    /// Response headers (`Content-Type`).
    pub headers: std::collections::HashMap<String, String>,
    /// Response body.
    pub body: String,
}

impl From<Response> for WebhookResponse {
    fn from(r: Response) -> Self {
        WebhookResponse {
            status: r.status as u32,
            headers: r
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: r.body,
        }
    }
}

/// A booking of the app (iCalUID ending in `@cal.com`) that changed at the provider.
#[napi(object)]
pub struct BookingUpdate {
    /// The booking uid (iCalUID without `@cal.com`).
    pub uid: String,
    /// New start (ISO-8601 UTC), absent when cancelled.
    pub start: Option<String>,
    /// New end (ISO-8601 UTC), absent when cancelled.
    pub end: Option<String>,
    /// True when the event was cancelled or deleted at the provider.
    pub cancelled: bool,
}

impl From<Found> for BookingUpdate {
    fn from(b: Found) -> Self {
        BookingUpdate {
            uid: b.uid,
            start: b.start.map(format_utc),
            end: b.end.map(format_utc),
            cancelled: b.cancelled,
        }
    }
}

/// A change of one of the app's bookings waiting in the two-way sync outbox; acknowledge it with
/// `ackBookingChanges([id])` once handled.
#[napi(object)]
pub struct BookingChange {
    /// Acknowledges this state of the change (a later change of the same event gets a new id).
    pub id: String,
    /// The booking uid (the event's iCalUID without `@cal.com`).
    pub uid: String,
    /// New start (ISO-8601 UTC), absent when cancelled.
    pub start: Option<String>,
    /// New end (ISO-8601 UTC), absent when cancelled.
    pub end: Option<String>,
    /// The event was cancelled or deleted at the provider.
    pub cancelled: bool,
    /// The `SelectedCalendar` row holding the calendar's cached events.
    pub selected_calendar_id: String,
    /// The provider's id of the event (one per occurrence of a recurring booking).
    pub external_id: String,
    pub user_id: i32,
    #[napi(ts_type = "'google_calendar' | 'office365_calendar'")]
    pub integration: String,
    /// When the sync that found it committed (ISO-8601 UTC).
    pub changed_at: String,
    /// How many times it has been handed out, this time included (more than 1: a taker before did
    /// not acknowledge it in time).
    pub deliveries: i32,
}

impl From<Queued> for BookingChange {
    fn from(q: Queued) -> Self {
        BookingChange {
            id: q.id.to_string(),
            uid: q.uid,
            start: q.start.map(format_utc),
            end: q.end.map(format_utc),
            cancelled: q.cancelled,
            selected_calendar_id: q.selected_calendar_id,
            external_id: q.external_id,
            user_id: q.user_id,
            integration: q.integration,
            changed_at: format_utc(q.changed_at),
            deliveries: q.deliveries,
        }
    }
}

/// Options of `takeBookingChanges`.
#[napi(object, object_to_js = false)]
pub struct TakeOptions {
    /// Most changes to take. Default 100, at most 1000.
    pub limit: Option<u32>,
    /// Milliseconds the taken changes are held for this taker; one not acknowledged by then is
    /// handed out again. Default 60000.
    pub hold_ms: Option<u32>,
}

/// What a sync did.
#[napi(object)]
pub struct SyncResult {
    /// The `SelectedCalendar` row that holds the calendar's cached events.
    pub selected_calendar_id: String,
    /// Whether it was a full sync.
    pub full: bool,
    /// Why a full sync ran: `requested`, `first_sync`, `token_expired` or `repeated_failures`.
    pub full_reason: Option<String>,
    /// Provider pages read.
    pub pages: u32,
    /// Cached events inserted or updated.
    pub upserted: i64,
    /// Cached events deleted.
    pub deleted: i64,
    /// True when a concurrent sync already covered the request and nothing ran.
    pub coalesced: bool,
    /// With `calendar-subscription-sync` on: the app's own bookings that changed (incremental syncs).
    pub booking_changes: Vec<BookingUpdate>,
    /// Milliseconds spent waiting for the provider.
    pub provider_ms: f64,
    /// Milliseconds spent writing cache rows.
    pub database_ms: f64,
    /// With `calendar-cache-sql-write` on: legacy `"CalendarCache"` rows rewritten from the SQL cache.
    pub legacy_written: u32,
    /// With `calendar-cache-sql-write` on: event-type groups left to the legacy path (a calendar of
    /// theirs the SQL cache cannot vouch for; their old legacy row was deleted).
    pub legacy_skipped: u32,
}

impl From<SyncReport> for SyncResult {
    fn from(r: SyncReport) -> Self {
        SyncResult {
            selected_calendar_id: r.owner_id,
            full: r.full,
            full_reason: r.full_reason.map(str::to_string),
            pages: r.pages,
            upserted: r.upserted as i64,
            deleted: r.deleted as i64,
            coalesced: r.coalesced,
            booking_changes: r.booking_changes.into_iter().map(Into::into).collect(),
            provider_ms: r.provider_ms,
            database_ms: r.db_ms,
            legacy_written: r.legacy_written,
            legacy_skipped: r.legacy_skipped,
        }
    }
}

/// What `subscribe` did.
#[napi(object)]
pub struct SubscribeResult {
    /// The new channel's id.
    pub channel_id: String,
    /// When the provider will close the channel (ISO-8601 UTC).
    pub expiration: Option<String>,
    /// The sync that followed.
    pub sync: Option<SyncResult>,
}

impl From<Subscribed> for SubscribeResult {
    fn from(s: Subscribed) -> Self {
        SubscribeResult {
            channel_id: s.channel_id,
            expiration: s.expiration.map(format_utc),
            sync: s.sync.map(Into::into),
        }
    }
}

/// Options of `syncCalendar`.
#[napi(object, object_to_js = false)]
pub struct SyncOptions {
    /// Run a full sync even when an incremental one is possible.
    pub full: Option<bool>,
}

/// Options of `handleGoogleWebhook` and `handleMicrosoftWebhook`.
#[napi(object, object_to_js = false)]
pub struct WebhookOptions {
    /// Finish the syncs the notifications ask for before answering. Default false (answer at once,
    /// sync in the background).
    pub wait_for_sync: Option<bool>,
}

impl WebhookOptions {
    /// Whether the caller asked to wait for the syncs (default false).
    pub fn wait(options: Option<WebhookOptions>) -> bool {
        options.and_then(|o| o.wait_for_sync).unwrap_or(false)
    }
}
