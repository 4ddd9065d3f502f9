//! Option and result objects as JS sees them. Doc comments become the TypeScript docs.

use std::time::Duration;

use napi::bindgen_prelude::Uint32Array;
use napi_derive::napi;

use crate::cache::Answer;
use crate::config::{webhook_address, Config, Secret, GOOGLE_WEBHOOK_PATH, MICROSOFT_WEBHOOK_PATH};
use crate::db::outbox::{Found, Queued};
use crate::sync::channels::Subscribed;
use crate::sync::SyncReport;
use crate::time::format_utc;
use crate::webhook::Response;

/// Options for `CalendarSync.connect`. Every field is optional and defaults from the environment.
#[napi(object, object_to_js = false)]
#[derive(Default)]
pub struct ConnectOptions {
    /// Postgres connection string. Default: `DATABASE_URL`.
    pub database_url: Option<String>,
    /// A transaction-mode pooler (PgBouncer, Supavisor, Neon's pooler) sits in front of Postgres.
    /// Default: true when the URL carries Prisma's `pgbouncer=true`. Reads then call a function
    /// whose plan the server keeps instead of a named prepared statement; everything else works the
    /// same either way, and a pooler that was not announced is detected on the first read it breaks.
    pub pooler: Option<bool>,
    /// Most pooled connections. Default 10.
    pub max_connections: Option<u32>,
    /// Milliseconds connecting, or a webhook's statements, may take before failing with
    /// `DB_UNAVAILABLE` (the webhook then answers 503). Default 5000.
    pub connect_timeout_ms: Option<u32>,
    /// Milliseconds one `getCachedAvailability` call may wait for the database in all (a
    /// connection, a pooler's queue, the statements) before rejecting with `DB_UNAVAILABLE`.
    /// Default 10000.
    pub read_timeout_ms: Option<u32>,
    /// Milliseconds a feature-flag answer is reused in-process; 0 disables. Default 30000.
    pub flag_cache_ttl_ms: Option<u32>,
    /// Milliseconds without a successful sync or channel confirmation after which a calendar is
    /// `stale`. Default 86400000 (24 h).
    pub stale_after_ms: Option<u32>,
    /// Most calendars one `getCachedAvailability` call may name. Default 1000.
    pub max_calendars_per_read: Option<u32>,
    /// Google Calendar API base URL (tests point it at the emulator). Default
    /// `https://www.googleapis.com/calendar/v3` (env `GOOGLE_API_URL`).
    pub google_api_url: Option<String>,
    /// Google OAuth token endpoint. Default `https://oauth2.googleapis.com/token` (env `GOOGLE_TOKEN_URL`).
    pub google_token_url: Option<String>,
    /// Google OAuth client id. Default: `GOOGLE_API_CREDENTIALS` `web.client_id`.
    pub google_client_id: Option<String>,
    /// Google OAuth client secret. Default: `GOOGLE_API_CREDENTIALS` `web.client_secret`.
    pub google_client_secret: Option<String>,
    /// Secret behind Google channel tokens. Default `GOOGLE_WEBHOOK_TOKEN`.
    pub google_webhook_token: Option<String>,
    /// Base URL of the app (the Google webhook path is appended). Default `GOOGLE_WEBHOOK_URL`, else
    /// `NEXT_PUBLIC_WEBAPP_URL`.
    pub google_webhook_url: Option<String>,
    /// Requested Google channel lifetime in seconds. Default 604800 (7 days).
    pub google_channel_ttl_seconds: Option<u32>,
    /// `maxResults` per Google `events.list` page (1-2500). Default 2500.
    pub google_page_size: Option<u32>,
    /// Whether events the calendar owner declined are free. Default true.
    pub declined_is_free: Option<bool>,
    /// Microsoft Graph base URL. Default `https://graph.microsoft.com/v1.0` (env `MS_GRAPH_API_URL`).
    pub microsoft_api_url: Option<String>,
    /// Microsoft OAuth token endpoint. Default
    /// `https://login.microsoftonline.com/common/oauth2/v2.0/token` (env `MS_GRAPH_TOKEN_URL`).
    pub microsoft_token_url: Option<String>,
    /// Microsoft OAuth client id. Default `MS_GRAPH_CLIENT_ID`.
    pub microsoft_client_id: Option<String>,
    /// Microsoft OAuth client secret. Default `MS_GRAPH_CLIENT_SECRET`.
    pub microsoft_client_secret: Option<String>,
    /// The `clientState` secret of Graph subscriptions. Default `MICROSOFT_WEBHOOK_TOKEN`.
    pub microsoft_webhook_token: Option<String>,
    /// Base URL of the app (the Outlook webhook path is appended). Default `MICROSOFT_WEBHOOK_URL`,
    /// else `NEXT_PUBLIC_WEBAPP_URL`.
    pub microsoft_webhook_url: Option<String>,
    /// Requested subscription lifetime in minutes (at most 10070). Default 4320 (3 days).
    pub microsoft_subscription_ttl_minutes: Option<u32>,
    /// `odata.maxpagesize` of delta pages (1-1000). Default 100.
    pub microsoft_page_size: Option<u32>,
    /// Whether `showAs: workingElsewhere` is busy. Default true.
    pub working_elsewhere_is_busy: Option<bool>,
    /// Timeout of one provider request in milliseconds. Default 30000.
    pub request_timeout_ms: Option<u32>,
    /// Attempts per provider request on 429/5xx/rate limits (first included). Default 5.
    pub max_attempts: Option<u32>,
    /// First retry delay in milliseconds (doubles per attempt, with jitter). Default 500.
    pub retry_base_delay_ms: Option<u32>,
    /// Days before now a full sync covers. Default 1.
    pub sync_window_past_days: Option<u32>,
    /// Days after now a full sync covers. Default 180.
    pub sync_window_future_days: Option<u32>,
    /// Least time in milliseconds between the starts of two notification-driven syncs of one
    /// calendar: the first notification syncs at once, later ones within the interval share one
    /// follow-up sync. 0 syncs on every notification that finds no sync pending. Default 1000.
    pub sync_min_interval_ms: Option<u32>,
    /// How many of `maxConnections` background work (syncs, token refreshes, cron) may use; the
    /// rest stay free for reads and webhook answers, however slow the providers are. Default: three
    /// tenths of `maxConnections`, at least 1.
    pub background_connections: Option<u32>,
    /// Events a sync keeps in memory before staging them in the database (bounds memory on any
    /// calendar size). Default 5000.
    pub sync_buffer_events: Option<u32>,
    /// A read that finds a calendar `stale`, `never_synced`, `out_of_window` or `sync_failed` (past
    /// its backoff) schedules one background sync for it, deduplicated across reads and processes;
    /// the read never waits for it. Default true.
    pub sync_on_read: Option<bool>,
    /// Milliseconds a change announced by a webhook may wait for its sync before reads report the
    /// calendar `stale` (a process that acknowledged it may have died; any process then re-drives
    /// it). Default 20000.
    pub pending_grace_ms: Option<u32>,
    /// Milliseconds a claim (a sync, a token refresh or a channel change of one calendar) lasts
    /// unless its process renews it: a process that dies holding one delays the next such work by
    /// at most this. A sync waits up to four times this for another process's sync of the same
    /// calendar before it fails (and records the failure). Default 30000.
    pub claim_ttl_ms: Option<u32>,
    /// Whether `getCachedAvailability` also serves from Cal.com's legacy JSON cache
    /// (`"CalendarCache"`) while an installation migrates off it (SPEC §8). `'off'` (default): the
    /// SQL cache only. `'switch'`: per user, `calendar-cache-sql` on serves the SQL cache, off the
    /// legacy JSON cache as Cal.com's legacy reader looks it up; still one round trip when the
    /// flags are cached. `'shadow'`: as `'switch'`, and each served calendar is also compared with
    /// the other source; differences are recorded (calendar id and interval only) for
    /// `calsync migrate status`, never slowing or failing the read.
    #[napi(ts_type = "'off' | 'switch' | 'shadow'")]
    pub legacy_reads: Option<String>,
    /// Where calsync's logs go: any object with `debug`, `info`, `warn` and `error` methods
    /// (`console`, a pino or winston logger...). Each entry is one call, `logger[level](fields,
    /// message)`: `fields` holds structured values (`code`, `calendar`, `integration`,
    /// `provider`, `status`, `ms`..., and `suppressed` when identical entries were left out in
    /// the last minute), never tokens, secrets or event contents. Default: warnings and errors as
    /// one JSON line each on stderr.
    #[napi(
        ts_type = "{ debug?(fields: Record<string, unknown>, message: string): void; info?(fields: Record<string, unknown>, message: string): void; warn?(fields: Record<string, unknown>, message: string): void; error?(fields: Record<string, unknown>, message: string): void }"
    )]
    pub logger: Option<LogCallback>,
    /// The least severe level logged: `'debug'`, `'info'`, `'warn'`, `'error'` or `'off'`.
    /// Default: `CALSYNC_LOG`, else `'warn'`.
    #[napi(ts_type = "'debug' | 'info' | 'warn' | 'error' | 'off'")]
    pub log_level: Option<String>,
}

/// The native side of the `logger` option: calsync.js turns the logger object into this function.
pub type LogCallback = napi::threadsafe_function::ThreadsafeFunction<
    LogEntry,
    napi::bindgen_prelude::Unknown<'static>,
    LogEntry,
    napi::Status,
    false,
    true,
>;

/// One log entry as the package entry hands it to the `logger` option's method `level`.
#[napi(object, object_from_js = false)]
pub struct LogEntry {
    /// `debug`, `info`, `warn` or `error`.
    pub level: String,
    pub message: String,
    /// Structured values: `code`, `calendar`, `integration`, `ms`... never secrets.
    pub fields: serde_json::Value,
}

/// Sends log entries to the JS logger; the call never keeps Node alive and never blocks.
pub struct JsLog(pub LogCallback);

impl crate::log::Sink for JsLog {
    fn write(&self, level: crate::log::Level, message: &str, fields: serde_json::Map<String, serde_json::Value>) {
        let entry = LogEntry {
            level: level.as_str().to_string(),
            message: message.to_string(),
            fields: serde_json::Value::Object(fields),
        };
        self.0.call(
            entry,
            napi::threadsafe_function::ThreadsafeFunctionCallMode::NonBlocking,
        );
    }
}

impl ConnectOptions {
    /// The library configuration: environment defaults overridden by these options.
    pub fn into_config(mut self) -> crate::error::Result<Config> {
        let mut cfg = Config::from_env();
        if let Some(v) = self.log_level.take() {
            cfg.log_level = v;
        }
        if let Some(v) = &self.legacy_reads {
            cfg.legacy_reads = crate::config::LegacyReads::parse(v)?;
        }
        let ms = |v: u32| Duration::from_millis(v as u64);
        if let Some(url) = self.database_url {
            cfg.database_url = Secret::new(url);
        }
        if let Some(v) = self.pooler {
            cfg.pooler = Some(v);
        }
        if let Some(v) = self.max_connections {
            cfg.max_connections = v;
        }
        if let Some(v) = self.connect_timeout_ms {
            cfg.connect_timeout = ms(v);
        }
        if let Some(v) = self.read_timeout_ms {
            cfg.read_timeout = ms(v);
        }
        if let Some(v) = self.flag_cache_ttl_ms {
            cfg.flag_cache_ttl = ms(v);
        }
        if let Some(v) = self.stale_after_ms {
            cfg.stale_after = ms(v);
        }
        if let Some(v) = self.max_calendars_per_read {
            cfg.max_calendars_per_read = v as usize;
        }
        let g = &mut cfg.google;
        if let Some(v) = self.google_api_url {
            g.api_url = v;
        }
        if let Some(v) = self.google_token_url {
            g.token_url = v;
        }
        if let Some(v) = self.google_client_id {
            g.client_id = Some(v);
        }
        if let Some(v) = self.google_client_secret {
            g.client_secret = Some(Secret::new(v));
        }
        if let Some(v) = self.google_webhook_token {
            g.webhook_token = Some(Secret::new(v));
        }
        if let Some(v) = self.google_webhook_url {
            g.webhook_url = Some(webhook_address(&v, GOOGLE_WEBHOOK_PATH));
        }
        if let Some(v) = self.google_channel_ttl_seconds {
            g.channel_ttl = Duration::from_secs(v as u64);
        }
        if let Some(v) = self.google_page_size {
            g.page_size = v;
        }
        if let Some(v) = self.declined_is_free {
            g.declined_is_free = v;
        }
        let m = &mut cfg.microsoft;
        if let Some(v) = self.microsoft_api_url {
            m.api_url = v;
        }
        if let Some(v) = self.microsoft_token_url {
            m.token_url = v;
        }
        if let Some(v) = self.microsoft_client_id {
            m.client_id = Some(v);
        }
        if let Some(v) = self.microsoft_client_secret {
            m.client_secret = Some(Secret::new(v));
        }
        if let Some(v) = self.microsoft_webhook_token {
            m.webhook_token = Some(Secret::new(v));
        }
        if let Some(v) = self.microsoft_webhook_url {
            m.webhook_url = Some(webhook_address(&v, MICROSOFT_WEBHOOK_PATH));
        }
        if let Some(v) = self.microsoft_subscription_ttl_minutes {
            m.subscription_ttl = Duration::from_secs(v as u64 * 60);
        }
        if let Some(v) = self.microsoft_page_size {
            m.page_size = v;
        }
        if let Some(v) = self.working_elsewhere_is_busy {
            m.working_elsewhere_is_busy = v;
        }
        if let Some(v) = self.request_timeout_ms {
            cfg.http.request_timeout = ms(v);
        }
        if let Some(v) = self.max_attempts {
            cfg.http.max_attempts = v;
        }
        if let Some(v) = self.retry_base_delay_ms {
            cfg.http.base_delay = ms(v);
        }
        let day = |d: u32| Duration::from_secs(d as u64 * 86_400);
        if let Some(v) = self.sync_window_past_days {
            cfg.sync.window_past = day(v);
        }
        if let Some(v) = self.sync_window_future_days {
            cfg.sync.window_future = day(v);
        }
        if let Some(v) = self.sync_min_interval_ms {
            cfg.sync.min_interval = ms(v);
        }
        if let Some(v) = self.background_connections {
            cfg.background_connections = Some(v);
        }
        if let Some(v) = self.sync_buffer_events {
            cfg.sync.buffer_events = v as usize;
        }
        if let Some(v) = self.sync_on_read {
            cfg.sync_on_read = v;
        }
        if let Some(v) = self.pending_grace_ms {
            cfg.pending_grace = ms(v);
        }
        if let Some(v) = self.claim_ttl_ms {
            cfg.sync.lease = ms(v.max(100));
            cfg.sync.lock_timeout = cfg.sync.lease * 4;
        }
        Ok(cfg)
    }
}

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

/// Options of `renewWatches`.
#[napi(object, object_to_js = false)]
#[derive(Default)]
pub struct RenewWatchesOptions {
    /// Renew channels that expire within this many milliseconds. Default 86400000 (24 h).
    pub margin_ms: Option<f64>,
    /// Concurrent provider operations per provider. Default 8.
    pub concurrency: Option<u32>,
    /// Calendars claimed per batch. Default 500.
    pub batch_size: Option<u32>,
    /// Safety net: resync watched calendars whose last successful sync is older than this many
    /// milliseconds, however healthy their channel looks. Default 21600000 (6 h); a negative value
    /// skips the safety net.
    pub resync_after_ms: Option<f64>,
    /// Consecutive subscribe failures that pause a calendar. Default 3.
    pub max_failures: Option<u32>,
    /// How long such a pause lasts, in milliseconds. Default 86400000 (24 h).
    pub pause_ms: Option<f64>,
    /// Start no new work after this many milliseconds (a serverless route's time limit, less what
    /// the route needs to answer: 250000 under Vercel's 300 s). Work left over is reported in
    /// `deferred`, `complete` is false, and the next run continues with it. Default: no limit.
    pub budget_ms: Option<f64>,
}

impl RenewWatchesOptions {
    /// The library's renewal options.
    pub fn into_options(self) -> crate::cron::RenewOptions {
        let mut o = crate::cron::RenewOptions::default();
        let ms = |v: f64| Duration::from_millis(v.max(0.0) as u64);
        if let Some(v) = self.margin_ms {
            o.policy.margin = ms(v);
        }
        if let Some(v) = self.max_failures {
            o.policy.max_failures = v as i32;
        }
        if let Some(v) = self.pause_ms {
            o.policy.pause = ms(v);
        }
        if let Some(v) = self.concurrency {
            o.concurrency = v.max(1) as usize;
        }
        if let Some(v) = self.batch_size {
            o.batch_size = v.max(1) as usize;
        }
        if let Some(v) = self.resync_after_ms {
            o.resync_after = (v >= 0.0).then(|| ms(v));
        }
        if let Some(v) = self.budget_ms {
            o.budget = Some(ms(v));
        }
        o
    }
}

/// What `renewWatches` did, counted by calendar (rows selecting one provider calendar count once).
#[napi(object)]
pub struct RenewReport {
    /// Calendars looked at.
    pub checked: i64,
    /// Newly subscribed (and synced).
    pub created: i64,
    /// Channels renewed (Google: new channel, old one stopped; Outlook: PATCH, or a new one on 404).
    pub renewed: i64,
    /// Rows given the channel their calendar already had.
    pub shared: i64,
    /// Channels stopped (flag off, credential invalid, generic calendar) and cached rows deleted.
    pub stopped: i64,
    /// Calendars whose action failed (counted in `syncSubscribedErrorCount`).
    pub failed: i64,
    /// Calendars another process had claimed.
    pub skipped: i64,
    /// Calendars pausing after repeated subscribe failures.
    pub paused: i64,
    /// Calendars resynced by the safety net.
    pub resynced: i64,
    /// Leaked channels stopped: opened by a process that failed or died before storing them, or
    /// replaced and not stopped then (the channel ledger).
    pub orphans_stopped: i64,
    /// Highest number of concurrent Google operations.
    pub peak_google_concurrency: i64,
    /// Highest number of concurrent Microsoft operations.
    pub peak_microsoft_concurrency: i64,
    /// Calendars left for the next run because the time budget ran out.
    pub deferred: i64,
    /// Batches that failed as a whole (a database error); the run went on.
    pub batch_errors: i64,
    /// Whether the run did everything it had to (false when the budget ran out).
    pub complete: bool,
}

impl From<crate::cron::RenewReport> for RenewReport {
    fn from(r: crate::cron::RenewReport) -> Self {
        let i = |v: u64| v as i64;
        RenewReport {
            checked: i(r.checked),
            created: i(r.created),
            renewed: i(r.renewed),
            shared: i(r.shared),
            stopped: i(r.stopped),
            failed: i(r.failed),
            skipped: i(r.skipped),
            paused: i(r.paused),
            resynced: i(r.resynced),
            orphans_stopped: i(r.orphans_stopped),
            peak_google_concurrency: i(r.peak_google),
            peak_microsoft_concurrency: i(r.peak_microsoft),
            deferred: i(r.deferred),
            batch_errors: i(r.batch_errors),
            complete: r.complete,
        }
    }
}

/// Options of `cleanup`.
#[napi(object, object_to_js = false)]
#[derive(Default)]
pub struct CleanupOptions {
    /// Delete cached events that ended before this ISO-8601 instant. Default: now.
    pub before: Option<String>,
    /// Rows per delete statement. Default 5000.
    pub batch_size: Option<u32>,
}

/// What `cleanup` did.
#[napi(object)]
pub struct CleanupResult {
    /// Cached events that ended before the cutoff.
    pub ended_events: i64,
    /// Cached events of calendars that are no longer watched.
    pub unwatched_events: i64,
    /// Expired rows of the legacy `CalendarCache`.
    pub legacy_rows: i64,
    /// Statements run (each deletes at most `batchSize` rows).
    pub statements: i64,
    /// The longest single statement, in milliseconds.
    pub longest_statement_ms: f64,
}

impl From<crate::cron::cleanup::CleanupReport> for CleanupResult {
    fn from(r: crate::cron::cleanup::CleanupReport) -> Self {
        CleanupResult {
            ended_events: r.ended_events as i64,
            unwatched_events: r.unwatched_events as i64,
            legacy_rows: r.legacy_rows as i64,
            statements: r.statements as i64,
            longest_statement_ms: r.longest_statement_ms,
        }
    }
}

/// Calendars of one provider in one health state.
#[napi(object)]
pub struct HealthCount {
    /// `google_calendar` or `office365_calendar`.
    pub integration: String,
    /// `healthy`, `expiring` (channel ends within 24 h), `failing` (last sync or subscribe failed,
    /// or the credential is invalid), `stale` (no sync or confirmation within `staleAfterMs`), or
    /// `unsubscribed`.
    #[napi(ts_type = "'healthy' | 'expiring' | 'failing' | 'stale' | 'unsubscribed'")]
    pub health: String,
    /// For `failing` calendars: the error code of their last sync failure (`PROVIDER_UNAVAILABLE`,
    /// `PROVIDER_AUTH`, …), when a sync failed. Failing calendars back off (a minute after the first
    /// failure, doubling up to 12 hours).
    pub reason: Option<String>,
    /// Number of calendars.
    pub calendars: i64,
}

/// Progress of the current (or last) `renewWatches` run.
#[napi(object)]
pub struct RenewProgress {
    /// Calendars handled so far.
    pub done: i64,
    /// Calendars that needed work.
    pub total: i64,
}

/// Options of `settle`.
#[napi(object, object_to_js = false)]
pub struct SettleOptions {
    /// The longest to wait, in milliseconds. Default 30000.
    pub timeout_ms: Option<f64>,
}

/// What `settle` saw.
#[napi(object)]
pub struct Settled {
    /// True when every background sync had finished.
    pub settled: bool,
    /// Background syncs still running when the time ran out.
    pub running: u32,
}

/// Which legacy cache rows `verifyLegacyCache` compares (none given: all).
#[napi(object, object_to_js = false)]
pub struct LegacyScope {
    pub user_id: Option<i32>,
    pub team_id: Option<i32>,
}

/// One interval where a legacy row and the SQL cache differ.
#[napi(object)]
pub struct LegacyDivergence {
    /// The provider calendar id.
    pub calendar: String,
    #[napi(ts_type = "'missing_block' | 'extra_block' | 'different_bounds'")]
    pub kind: String,
    pub start: String,
    pub end: String,
}

/// What `verifyLegacyCache` found for one legacy row.
#[napi(object)]
pub struct LegacyVerdict {
    pub credential_id: i32,
    pub user_id: Option<i32>,
    #[napi(ts_type = "'equal' | 'diverged' | 'not_comparable'")]
    pub state: String,
    /// Why the row is not comparable.
    pub reason: Option<String>,
    pub divergences: Vec<LegacyDivergence>,
}

impl From<crate::legacy::Verdict> for LegacyVerdict {
    fn from(v: crate::legacy::Verdict) -> Self {
        LegacyVerdict {
            credential_id: v.credential_id,
            user_id: v.user_id,
            state: v.state.to_string(),
            reason: v.reason,
            divergences: v
                .divergences
                .into_iter()
                .map(|d| LegacyDivergence {
                    calendar: d.calendar,
                    kind: d.kind.to_string(),
                    start: d.start,
                    end: d.end,
                })
                .collect(),
        }
    }
}

/// Where the migration from the legacy JSON cache stands.
#[napi(object)]
pub struct LegacyStage {
    /// Users with legacy rows (live or expired).
    pub users: i64,
    /// Of those, users with `calendar-cache-sql-write` on (their syncs keep the rows current).
    pub writing: i64,
    /// Of those, users with `calendar-cache-sql` on (their reads come from the SQL cache).
    pub reading_sql: i64,
    /// Legacy rows still valid.
    pub live_rows: i64,
    /// Legacy rows past their `expiresAt`.
    pub expired_rows: i64,
    /// Teams (and organizations) with a `TeamFeatures` row for either migration flag.
    pub teams: Vec<LegacyTeamStage>,
    /// Differences shadow reads recorded over the last 30 days (`legacyReads: 'shadow'`).
    pub divergences: i64,
    /// The latest of them, newest first (at most 20).
    pub last_divergences: Vec<RecordedDivergence>,
}

/// A team's migration flags, as evaluated for the team (its own row, else its organization's).
#[napi(object)]
pub struct LegacyTeamStage {
    pub team_id: i32,
    /// `calendar-cache-sql-write` on.
    pub writing: bool,
    /// `calendar-cache-sql` on.
    pub reading_sql: bool,
}

/// A difference between the legacy JSON cache and the SQL cache that shadow reads recorded: the
/// calendar and the interval, never event contents.
#[napi(object)]
pub struct RecordedDivergence {
    pub selected_calendar_id: String,
    #[napi(ts_type = "'missing_block' | 'extra_block' | 'different_bounds'")]
    pub kind: String,
    pub start: String,
    pub end: String,
    /// The source the reads served.
    #[napi(ts_type = "'sql' | 'legacy'")]
    pub served: String,
    pub first_seen_at: String,
    pub last_seen_at: String,
}

impl From<crate::legacy::Stage> for LegacyStage {
    fn from(st: crate::legacy::Stage) -> Self {
        LegacyStage {
            users: st.users as i64,
            writing: st.writing as i64,
            reading_sql: st.reading_sql as i64,
            live_rows: st.live_rows as i64,
            expired_rows: st.expired_rows as i64,
            teams: st
                .teams
                .into_iter()
                .map(|t| LegacyTeamStage {
                    team_id: t.team_id,
                    writing: t.writing,
                    reading_sql: t.reading_sql,
                })
                .collect(),
            divergences: st.divergences as i64,
            last_divergences: st
                .last_divergences
                .into_iter()
                .map(|d| RecordedDivergence {
                    selected_calendar_id: d.selected_calendar_id,
                    kind: d.kind,
                    start: format_utc(d.start),
                    end: format_utc(d.end),
                    served: d.served,
                    first_seen_at: format_utc(d.first_seen_at),
                    last_seen_at: format_utc(d.last_seen_at),
                })
                .collect(),
        }
    }
}

/// Options of `dropLegacyCache`.
#[napi(object, object_to_js = false)]
pub struct DropLegacyOptions {
    /// Rows per delete statement. Default 5000.
    pub batch_size: Option<u32>,
}
