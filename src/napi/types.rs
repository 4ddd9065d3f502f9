//! Option and result objects as JS sees them. Doc comments become the TypeScript docs.

use std::time::Duration;

use napi_derive::napi;

use crate::availability::Answer;
use crate::config::{Config, Secret};

/// Options for `CalendarSync.connect`. Every field is optional and defaults from the environment.
#[napi(object, object_to_js = false)]
#[derive(Default)]
pub struct ConnectOptions {
    /// Postgres connection string. Default: `DATABASE_URL`.
    pub database_url: Option<String>,
    /// Most pooled connections. Default 10.
    pub max_connections: Option<u32>,
    /// Milliseconds connecting may take before failing with `DB_UNAVAILABLE`. Default 5000.
    pub connect_timeout_ms: Option<u32>,
    /// Milliseconds a feature-flag answer is reused in-process; 0 disables. Default 30000.
    pub flag_cache_ttl_ms: Option<u32>,
    /// Milliseconds without a successful sync or channel confirmation after which a calendar is
    /// `stale`. Default 86400000 (24 h).
    pub stale_after_ms: Option<u32>,
    /// Most calendars one `getCachedAvailability` call may name. Default 1000.
    pub max_calendars_per_read: Option<u32>,
}

impl ConnectOptions {
    /// The library configuration: environment defaults overridden by these options.
    pub fn into_config(self) -> Config {
        let mut cfg = Config::from_env();
        let ms = |v: u32| Duration::from_millis(v as u64);
        if let Some(url) = self.database_url {
            cfg.database_url = Secret::new(url);
        }
        if let Some(v) = self.max_connections {
            cfg.max_connections = v;
        }
        if let Some(v) = self.connect_timeout_ms {
            cfg.connect_timeout = ms(v);
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
        cfg
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

/// A busy interval from the cache. Overlapping and touching events of one calendar are merged and
/// clipped to the requested range, as a provider's free/busy answer is.
#[napi(object)]
pub struct BusyBlock {
    /// Start, ISO-8601 UTC with milliseconds (`2026-01-01T09:00:00.000Z`).
    pub start: String,
    /// End (exclusive), ISO-8601 UTC with milliseconds.
    pub end: String,
    /// The requested `SelectedCalendar.id` this block belongs to.
    pub selected_calendar_id: String,
    /// The integration it came from: `google_calendar` or `office365_calendar`.
    pub source: String,
}

/// A calendar the cache cannot answer for truthfully; call the provider live for it.
#[napi(object)]
pub struct UncachedCalendar {
    /// The requested `SelectedCalendar.id`.
    pub id: String,
    /// Why it is not served from the cache.
    #[napi(
        ts_type = "'not_found' | 'unsupported_provider' | 'flag_off' | 'credential_invalid' | 'not_subscribed' | 'never_synced' | 'sync_failed' | 'stale' | 'out_of_window'"
    )]
    pub reason: String,
}

/// The answer of `getCachedAvailability`.
#[napi(object)]
pub struct AvailabilityResult {
    /// Busy blocks of the served calendars, sorted by start.
    pub busy: Vec<BusyBlock>,
    /// Requested ids answered from the cache.
    pub served: Vec<String>,
    /// Requested ids not answered, each with a machine-readable reason.
    pub uncached: Vec<UncachedCalendar>,
}

impl From<Answer> for AvailabilityResult {
    fn from(a: Answer) -> Self {
        AvailabilityResult {
            busy: a
                .busy
                .into_iter()
                .map(|b| BusyBlock {
                    start: b.start,
                    end: b.end,
                    selected_calendar_id: b.selected_calendar_id,
                    source: b.source,
                })
                .collect(),
            served: a.served,
            uncached: a
                .uncached
                .into_iter()
                .map(|(id, reason)| UncachedCalendar {
                    id,
                    reason: reason.as_str().to_string(),
                })
                .collect(),
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
