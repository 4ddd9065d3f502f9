//! Calendar providers behind one interface, [`Provider`]: listing a calendar's changes from a
//! cursor, push channels, notifications, access tokens, and the mapping of provider events to cache
//! rows. Each provider lives in its own folder and is listed once in [`REGISTRY`]; the engine, cron,
//! channel bookkeeping and the webhook handler name none of them. Providers never touch the
//! database.

pub mod caldav;
pub mod google;
pub mod http;
#[cfg(test)]
pub mod memory;
pub mod microsoft;

use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDateTime;
use chrono_tz::Tz;

use crate::config::Config;
pub use crate::error::ProviderError;
use crate::error::Result;
use crate::model::{Change, Request, Response, Target};

/// Every provider calsync syncs: its integration name (`SelectedCalendar.integration`,
/// `Credential.type`), how to build it, and how its calendars stay fresh. Adding a provider is a
/// folder and one line here.
pub const REGISTRY: &[(&str, Build, Freshness)] = &[
    (google::INTEGRATION, google::provider, Freshness::Push),
    (microsoft::INTEGRATION, microsoft::provider, Freshness::Push),
    (caldav::CALDAV, caldav::caldav_provider, Freshness::Polled),
    (caldav::APPLE, caldav::apple_provider, Freshness::Polled),
    #[cfg(test)]
    (memory::INTEGRATION, memory::provider, Freshness::Push),
];

/// How a provider's calendars are kept fresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Push channels announce changes (webhooks), renewed by cron.
    Push,
    /// No push: `pollCalendars` asks for changes every poll interval.
    Polled,
}

/// Whether `integration`'s calendars are polled rather than pushed.
pub fn polled(integration: &str) -> bool {
    REGISTRY
        .iter()
        .any(|(name, _, f)| *name == integration && *f == Freshness::Polled)
}

/// Builds a provider from the shared HTTP client and the configuration.
pub type Build = fn(&http::Http, &Config) -> Arc<dyn Provider>;

/// Whether calsync syncs calendars of `integration`.
pub fn supports(integration: &str) -> bool {
    REGISTRY.iter().any(|(name, ..)| *name == integration)
}

/// The OAuth token endpoint's answer to a refresh or a delegated grant.
#[derive(Debug, serde::Deserialize)]
pub struct Token {
    pub access_token: String,
    pub expires_in: Option<i64>,
    pub scope: Option<String>,
    pub token_type: Option<String>,
    pub refresh_token: Option<String>,
}

/// Where a listing starts: a full listing of a window, or the changes since a cursor (a sync token,
/// a delta link) a previous listing ended with.
#[derive(Debug, Clone, Copy)]
pub enum Start<'a> {
    Full { from: NaiveDateTime, to: NaiveDateTime },
    Since(&'a str),
}

/// One page of a listing.
#[derive(Debug)]
pub struct Page {
    /// What each listed event means for the cache, in the provider's order.
    pub changes: Vec<Change>,
    /// The calendar's time zone, when the page names it (all-day events span its days).
    pub time_zone: Option<Tz>,
    pub next: Next,
}

/// What follows a page.
#[derive(Debug)]
pub enum Next {
    /// More pages: pass this back as `page` for the next one.
    Page(String),
    /// The listing is complete; the cursor to list the next changes from, if the provider gave one.
    Done(Option<String>),
}

/// One event asked for by id (two-way sync checks deletions and moves this way).
#[derive(Debug)]
pub enum Fetched {
    /// The provider no longer has it.
    Gone,
    /// It exists, cancelled: by the calendar's organizer copy (`organizer`) or not; the iCalUID when
    /// the provider keeps the one the app gave.
    Cancelled { organizer: bool, ical_uid: Option<String> },
    /// It exists; what it means for the cache.
    Listed(Box<Change>),
}

/// A push channel as the provider granted it.
#[derive(Debug, Clone)]
pub struct Granted {
    pub id: String,
    /// What kind of channel it is, as stored on the calendar's rows.
    pub kind: &'static str,
    /// The provider's name of the watched resource (Google's `resourceId`, Graph's `resource`).
    pub resource_id: String,
    pub resource_uri: Option<String>,
    pub expiration: Option<NaiveDateTime>,
}

/// What a provider made of a webhook request, before any database work.
#[derive(Debug)]
pub enum Inbound {
    /// Answer at once: a handshake, a state calsync does not act on, or a refusal. The request's
    /// `items` are counted under `outcome` (`handshake`, `ignored`, `unconfigured`, `malformed`,
    /// `forged`); `reason` says why a refusal was refused, for the log (it names no secret).
    Answer {
        outcome: &'static str,
        items: usize,
        response: Response,
        reason: &'static str,
    },
    /// Verified notices, one per channel. `accepted`: how many items of the request they came
    /// from; `rejected`: items that failed verification, ignored (the rest still count).
    Notices {
        notices: Vec<Notice>,
        accepted: usize,
        rejected: usize,
    },
}

impl Inbound {
    /// An answer to one request item.
    pub fn answer(outcome: &'static str, response: Response, reason: &'static str) -> Self {
        Inbound::Answer {
            outcome,
            items: 1,
            response,
            reason,
        }
    }
}

/// A verified notification about one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// The channel (Google's channel id, Graph's subscription id).
    pub channel_id: String,
    /// The watched resource the notice names, when it must match the channel's.
    pub resource: Resource,
    /// It presented the shared webhook secret rather than its channel's own token: good only for
    /// channels calsync did not open (the TypeScript implementation's).
    pub shared_secret: bool,
    pub action: Action,
}

/// Whether a notice's resource is checked against its channel's.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Resource {
    /// The provider's notices are not checked this way.
    Unchecked,
    /// The resource the notice names (none: it named none, which matches no stored channel).
    Named(Option<String>),
}

/// What a channel's calendar needs after a notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    /// Changes (or missed ones): sync incrementally.
    Sync,
    /// Renew the channel, then sync.
    Renew,
    /// The provider dropped the channel: recreate it (renewal asks the provider first), then sync.
    Recreate,
}

/// A calendar provider, as the engine, cron and webhooks use it.
#[async_trait::async_trait]
pub trait Provider: Send + Sync {
    /// Cal.com's integration name (`google_calendar`).
    fn integration(&self) -> &'static str;
    /// Its name in metric labels and logs (`google`).
    fn label(&self) -> &'static str;
    /// The endpoint names its requests are counted under (`google.events.list`, ...).
    fn endpoints(&self) -> &'static [&'static str];

    // ---- access ----------------------------------------------------------------------------

    /// Access read from the stored `Credential.key` itself, for providers whose key holds a
    /// password rather than OAuth tokens (CalDAV: the decrypted account). `None`: OAuth, as below.
    fn key_access(&self, _key: &serde_json::Value) -> Option<Result<String>> {
        None
    }
    /// How many milliseconds one unit of `Credential.key.expiry_date` is (Google stores epoch
    /// milliseconds, Microsoft epoch seconds).
    fn expiry_unit_ms(&self) -> i64;
    /// Exchanges a refresh token for an access token (`InvalidGrant`: the grant is dead).
    async fn refresh(&self, refresh_token: &str) -> Result<Token, ProviderError>;
    /// The `WorkspacePlatform.slug` of this provider's delegation credentials.
    fn delegation_platform(&self) -> &'static str;
    /// Whom a delegated token is for: the user's email when tokens act as one user, "" when one
    /// token serves the whole tenant. Delegated tokens are kept per (credential, subject).
    fn delegation_subject(&self, user_email: &str) -> String;
    /// A token from a delegation credential's `serviceAccountKey` for `subject` (`Config` when the
    /// key lacks what this provider needs).
    async fn delegated_token(&self, key: &serde_json::Value, subject: &str) -> Result<Token, ProviderError>;

    // ---- listing ---------------------------------------------------------------------------

    /// One page of the calendar's events from `start` (`page`: the previous page's [`Next::Page`]).
    /// `tz` is the calendar's time zone as an earlier page named it (before any page: UTC, or for
    /// a polled calendar its user's zone). `SyncTokenInvalid`: the cursor expired, list in full.
    async fn list(
        &self,
        access: &str,
        calendar: &Target<'_>,
        start: Start<'_>,
        page: Option<&str>,
        tz: Tz,
    ) -> Result<Page, ProviderError>;
    /// Which of these calendars (`(external id, cursor)`) are known to be unchanged since their
    /// cursor, asked in as few requests as the provider can: a CalDAV server's calendar home shows
    /// every calendar's sync token in one answer. `false`: changed, or not known — list it.
    async fn unchanged(&self, _access: &str, calendars: &[(&str, &str)]) -> Result<Vec<bool>, ProviderError> {
        Ok(vec![false; calendars.len()])
    }
    /// One event as it stands now.
    async fn get_event(
        &self,
        access: &str,
        calendar: &Target<'_>,
        event_id: &str,
        tz: Tz,
    ) -> Result<Fetched, ProviderError>;
    /// Whether an event the app creates keeps the iCalUID the app gives it (so the iCalUID names
    /// the booking); false when the provider sets its own (the app's booking references name them).
    fn keeps_app_ical_uid(&self) -> bool;
    /// Whether Cal.com's legacy JSON cache (`"CalendarCache"`) holds this provider's calendars.
    fn in_legacy_cache(&self) -> bool;
    /// Whether its listings can tell the app's bookings apart for two-way sync.
    fn reports_bookings(&self) -> bool {
        true
    }

    // ---- push channels ----------------------------------------------------------------------

    /// Whether a calendar can be watched at all (Google's holiday and birthday calendars cannot).
    fn watchable(&self, external_id: &str) -> bool;
    /// Whether calsync names a new channel (the ledger id becomes its id) or the provider does.
    fn names_channels(&self) -> bool;
    /// The longest a channel calsync opens lives.
    fn channel_ttl(&self) -> Duration;
    /// Opens a push channel for the calendar (`channel_id`: calsync's name for it).
    async fn open_channel(&self, access: &str, calendar: &Target<'_>, channel_id: &str) -> Result<Granted>;
    /// Whether a channel is extended in place ([`Provider::renew_channel`]) rather than replaced.
    fn renews_in_place(&self) -> bool;
    /// Extends a channel; its new expiration. `NotFound`: the provider no longer has it.
    async fn renew_channel(&self, access: &str, channel_id: &str) -> Result<Option<NaiveDateTime>, ProviderError>;
    /// Whether stopping a channel needs the resource id too.
    fn stops_by_resource(&self) -> bool;
    /// Stops a channel; one the provider no longer knows counts as stopped.
    async fn stop_channel(&self, access: &str, channel_id: &str, resource_id: &str) -> Result<(), ProviderError>;
    /// The provider's live channels of this calendar that calsync may have opened, for a ledger row
    /// whose channel id was never stored (none when calsync names channels).
    async fn find_channels(&self, access: &str, calendar: &Target<'_>) -> Result<Vec<String>, ProviderError>;

    // ---- notifications ----------------------------------------------------------------------

    /// Reads and verifies a webhook request without touching the database (secrets compared in
    /// constant time). Never fails: bad input becomes an [`Inbound::Answer`].
    fn read_webhook(&self, req: &Request) -> Inbound;
    /// Whether a request carries a batch of notices, answered 202 with its counts (Graph); else
    /// its one notice is answered with its own outcome (Google).
    fn batches_notices(&self) -> bool;
}

/// Both webhook settings a push needs, or an error naming the missing configuration.
pub fn webhook_settings<'a>(
    token: Option<&'a crate::config::Secret>,
    url: Option<&'a str>,
    what: &str,
) -> Result<(&'a str, &'a str)> {
    match (token, url) {
        (Some(t), Some(u)) => Ok((t.expose(), u)),
        _ => Err(crate::error::Error::invalid(format!(
            "{what} push needs its webhook token and webhook URL configured"
        ))),
    }
}

/// Counts a token refresh's outcome and passes it on.
pub fn count_refresh<T>(
    metrics: &crate::metrics::Metrics,
    provider: &'static str,
    result: Result<T, ProviderError>,
) -> Result<T, ProviderError> {
    let outcome = result.as_ref().map_or_else(|e| e.label(), |_| "ok");
    crate::metrics::Metrics::inc(&metrics.refreshes, &[provider, outcome]);
    result
}

/// A client-level refusal pauses every token request to that provider for this long: a
/// misconfiguration is reported once per pause, and nothing spins while it lasts.
pub const CLIENT_PAUSE: std::time::Duration = std::time::Duration::from_secs(300);

/// Remembers a client-level refusal of a provider's token endpoint (see [`CLIENT_PAUSE`]).
/// Clones share the pause.
#[derive(Debug, Default, Clone)]
pub struct ClientPause(std::sync::Arc<std::sync::Mutex<Option<(std::time::Instant, String)>>>);

impl ClientPause {
    /// The refusal still in force, if any.
    pub fn active(&self) -> Option<ProviderError> {
        let guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match &*guard {
            Some((until, reason)) if std::time::Instant::now() < *until => {
                Some(ProviderError::ClientRejected(reason.clone()))
            }
            _ => None,
        }
    }

    /// Records a refusal; logs it when it starts a pause (once per pause, not once per calendar).
    pub fn refused(&self, provider: &str, reason: &str) -> ProviderError {
        let mut guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let now = std::time::Instant::now();
        if guard.as_ref().is_none_or(|(until, _)| now >= *until) {
            tracing::error!(
                provider,
                code = "PROVIDER_CONFIG",
                reason,
                "the token endpoint refused calsync's OAuth client: check its configuration; token requests pause for 5 minutes"
            );
        }
        *guard = Some((now + CLIENT_PAUSE, reason.to_string()));
        ProviderError::ClientRejected(reason.to_string())
    }
}
