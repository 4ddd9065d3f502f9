//! Options and their defaults from environment variables (SPEC §9). Secrets are redacted in `Debug`.

use std::fmt;
use std::time::Duration;

use crate::error::{Error, Result};

/// A string that must never be printed: database URLs, tokens.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Everything calsync can be configured with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Postgres connection string (`DATABASE_URL`).
    pub database_url: Secret,
    /// Hot standbys reads may use (`readDatabaseUrl`, `DATABASE_READ_URL`: one URL, or several
    /// separated by spaces). Writes, claims, marks and syncs always go to `database_url`.
    pub read_database_urls: Vec<Secret>,
    /// A replica whose replay lags by more than this is not read from (`maxReplicaLagMs`).
    pub max_replica_lag: Duration,
    /// Whether a transaction-mode pooler sits in front of Postgres: `Some(true)` from the `pooler`
    /// option, else from Prisma's `pgbouncer=true` URL parameter. Only reads differ (see
    /// `availability::read`); everything else is pooler-safe either way.
    pub pooler: Option<bool>,
    /// Upper bound of pooled connections, background work included.
    pub max_connections: u32,
    /// The share of `max_connections` background work (syncs, token refreshes, cron) may use; the
    /// rest is kept for reads and webhook answers. `None`: three tenths, at least one.
    pub background_connections: Option<u32>,
    /// How long connecting (and waiting for a pooled connection), or a webhook's statements, may take
    /// before `DB_UNAVAILABLE`.
    pub connect_timeout: Duration,
    /// How long one read may take in all (a connection, a pooler's queue, the statements) before
    /// it rejects with `DB_UNAVAILABLE` instead of holding up the caller.
    pub read_timeout: Duration,
    /// How long a feature-flag answer is reused in-process.
    pub flag_cache_ttl: Duration,
    /// A calendar with neither a successful sync nor a channel confirmation for this long is stale.
    pub stale_after: Duration,
    /// A polled calendar (CalDAV, iCloud) whose last successful poll is older than this is stale:
    /// reads go live and sync-on-read polls it (`pollStaleMs`; keep it above the poll cadence).
    pub poll_stale_after: Duration,
    /// How long a change a provider announced may wait for its sync before reads report the
    /// calendar `stale` rather than answer with what came before it.
    pub pending_grace: Duration,
    /// Whether a read that finds a calendar it could serve after a sync (`stale`, `never_synced`,
    /// `out_of_window`, `sync_failed` past its backoff) schedules one background sync for it.
    pub sync_on_read: bool,
    /// The most calendars one `getCachedAvailability` call may name.
    pub max_calendars_per_read: usize,
    /// Whether reads also serve from Cal.com's legacy JSON cache while an installation migrates
    /// off it (`CALSYNC_LEGACY_READS`).
    pub legacy_reads: LegacyReads,
    /// Google Calendar and OAuth settings.
    pub google: GoogleConfig,
    /// Microsoft Graph and OAuth settings.
    pub microsoft: MicrosoftConfig,
    /// CalDAV and Apple iCloud settings.
    pub caldav: CaldavConfig,
    /// How calsync talks to providers: timeouts and retries.
    pub http: HttpConfig,
    /// What a full sync covers and how sync failures are handled.
    pub sync: SyncConfig,
    /// The least severe log level written (`debug`, `info`, `warn`, `error` or `off`): the
    /// `logLevel` option, else `CALSYNC_LOG`, else `warn`.
    pub log_level: String,
}

/// Where reads come from while an installation migrates off Cal.com's legacy JSON cache
/// (`"CalendarCache"`, SPEC §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LegacyReads {
    /// The SQL cache only; the legacy cache is not looked at.
    #[default]
    Off,
    /// Per user, `calendar-cache-sql` on serves the SQL cache, off the legacy JSON cache.
    Switch,
    /// As `Switch`, and each served calendar is also compared with the source not served.
    Shadow,
}

impl LegacyReads {
    /// `off`, `switch` or `shadow`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "off" => Ok(LegacyReads::Off),
            "switch" => Ok(LegacyReads::Switch),
            "shadow" => Ok(LegacyReads::Shadow),
            other => Err(Error::invalid(format!(
                "legacyReads must be 'off', 'switch' or 'shadow', not {other:?}"
            ))),
        }
    }
}

/// Google Calendar settings (SPEC §5, §9).
#[derive(Debug, Clone)]
pub struct GoogleConfig {
    /// Calendar API base, `https://www.googleapis.com/calendar/v3` in production.
    pub api_url: String,
    /// OAuth token endpoint, `https://oauth2.googleapis.com/token` in production.
    pub token_url: String,
    /// OAuth client id (`GOOGLE_API_CREDENTIALS` `web.client_id`).
    pub client_id: Option<String>,
    /// OAuth client secret (`GOOGLE_API_CREDENTIALS` `web.client_secret`).
    pub client_secret: Option<Secret>,
    /// The secret behind channel tokens (`GOOGLE_WEBHOOK_TOKEN`).
    pub webhook_token: Option<Secret>,
    /// The full webhook address given to Google when watching a calendar.
    pub webhook_url: Option<String>,
    /// Requested channel lifetime.
    pub channel_ttl: Duration,
    /// `maxResults` for `events.list` (Google allows up to 2500).
    pub page_size: u32,
    /// Whether an event the calendar owner declined counts as free.
    pub declined_is_free: bool,
}

/// Microsoft Graph settings (SPEC §5, §9).
#[derive(Debug, Clone)]
pub struct MicrosoftConfig {
    /// Graph base, `https://graph.microsoft.com/v1.0` in production.
    pub api_url: String,
    /// OAuth token endpoint, `https://login.microsoftonline.com/common/oauth2/v2.0/token` in production.
    pub token_url: String,
    /// OAuth client id (`MS_GRAPH_CLIENT_ID`).
    pub client_id: Option<String>,
    /// OAuth client secret (`MS_GRAPH_CLIENT_SECRET`).
    pub client_secret: Option<Secret>,
    /// The `clientState` secret of subscriptions (`MICROSOFT_WEBHOOK_TOKEN`).
    pub webhook_token: Option<Secret>,
    /// The full notification address given to Graph.
    pub webhook_url: Option<String>,
    /// Requested subscription lifetime (Graph allows at most 10070 minutes for Outlook events).
    pub subscription_ttl: Duration,
    /// `odata.maxpagesize` for delta pages.
    pub page_size: u32,
    /// Whether `showAs: workingElsewhere` counts as busy.
    pub working_elsewhere_is_busy: bool,
}

/// The path Graph posts notifications to, appended to `MICROSOFT_WEBHOOK_URL`.
pub const MICROSOFT_WEBHOOK_PATH: &str = "/api/webhooks/calendar-subscription/office365_calendar";
/// Graph's cap on an Outlook event subscription's lifetime.
pub const MICROSOFT_MAX_SUBSCRIPTION: Duration = Duration::from_secs(10070 * 60);

impl MicrosoftConfig {
    fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Self {
        let base = get("MICROSOFT_WEBHOOK_URL").or_else(|| get("NEXT_PUBLIC_WEBAPP_URL"));
        MicrosoftConfig {
            api_url: get("MS_GRAPH_API_URL").unwrap_or_else(|| "https://graph.microsoft.com/v1.0".into()),
            token_url: get("MS_GRAPH_TOKEN_URL")
                .unwrap_or_else(|| "https://login.microsoftonline.com/common/oauth2/v2.0/token".into()),
            client_id: get("MS_GRAPH_CLIENT_ID"),
            client_secret: get("MS_GRAPH_CLIENT_SECRET").map(Secret::new),
            webhook_token: get("MICROSOFT_WEBHOOK_TOKEN")
                .filter(|s| !s.is_empty())
                .map(Secret::new),
            webhook_url: base.map(|b| webhook_address(&b, MICROSOFT_WEBHOOK_PATH)),
            subscription_ttl: 3 * DAY,
            page_size: 100,
            working_elsewhere_is_busy: true,
        }
    }
}

/// CalDAV and Apple iCloud settings.
#[derive(Debug, Clone)]
pub struct CaldavConfig {
    /// The key Cal.com encrypts CalDAV and Apple credentials with (`CALENDSO_ENCRYPTION_KEY`).
    pub encryption_key: Option<Secret>,
    /// Apple's CalDAV server, `https://caldav.icloud.com` in production (`APPLE_CALDAV_URL`).
    pub apple_url: String,
    /// Calendar objects fetched per `calendar-multiget` (one page of a listing).
    pub page_size: usize,
}

impl CaldavConfig {
    fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Self {
        CaldavConfig {
            encryption_key: get("CALENDSO_ENCRYPTION_KEY")
                .filter(|s| !s.is_empty())
                .map(Secret::new),
            apple_url: get("APPLE_CALDAV_URL").unwrap_or_else(|| "https://caldav.icloud.com".into()),
            page_size: 100,
        }
    }
}

/// Provider HTTP behaviour.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Timeout of one request.
    pub request_timeout: Duration,
    /// Attempts per request (the first one included) on 429, 5xx and rate-limit 403s.
    pub max_attempts: u32,
    /// First backoff delay; it doubles per attempt, with jitter, up to `max_delay`.
    pub base_delay: Duration,
    /// Longest wait between attempts; a longer `Retry-After` ends the retries.
    pub max_delay: Duration,
}

/// Sync behaviour (SPEC §6).
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// How far back from now a full sync reaches.
    pub window_past: Duration,
    /// How far ahead of now a full sync reaches.
    pub window_future: Duration,
    /// Consecutive failures after which the sync token is dropped and the next sync is full.
    pub failures_before_full_resync: i32,
    /// How long a sync waits for another process's sync of the same calendar.
    pub lock_timeout: Duration,
    /// The least time between the starts of two notification-driven syncs of one calendar in one
    /// process: a burst within it costs at most two provider list sequences.
    pub min_interval: Duration,
    /// Events a sync keeps in memory before it spills them to the staging table (memory stays
    /// bounded on any calendar size).
    pub buffer_events: usize,
    /// How long a sync's or a refresh's claim lasts without being renewed; a process that dies
    /// holding one delays the next sync of that calendar by at most this.
    pub lease: Duration,
}

/// The path Google posts notifications to, appended to `GOOGLE_WEBHOOK_URL`.
pub const GOOGLE_WEBHOOK_PATH: &str = "/api/webhooks/calendar-subscription/google_calendar";

const DAY: Duration = Duration::from_secs(86_400);

impl GoogleConfig {
    fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Self {
        // Cal.com keeps the OAuth client as JSON: {"web": {"client_id": ..., "client_secret": ...}}.
        let creds: Option<serde_json::Value> =
            get("GOOGLE_API_CREDENTIALS").and_then(|s| serde_json::from_str(&s).ok());
        let field = |k: &str| {
            creds
                .as_ref()
                .and_then(|c| c.get("web").unwrap_or(c).get(k))
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        let base = get("GOOGLE_WEBHOOK_URL").or_else(|| get("NEXT_PUBLIC_WEBAPP_URL"));
        GoogleConfig {
            api_url: get("GOOGLE_API_URL").unwrap_or_else(|| "https://www.googleapis.com/calendar/v3".into()),
            token_url: get("GOOGLE_TOKEN_URL").unwrap_or_else(|| "https://oauth2.googleapis.com/token".into()),
            client_id: field("client_id"),
            client_secret: field("client_secret").map(Secret::new),
            webhook_token: get("GOOGLE_WEBHOOK_TOKEN").filter(|s| !s.is_empty()).map(Secret::new),
            webhook_url: base.map(|b| webhook_address(&b, GOOGLE_WEBHOOK_PATH)),
            channel_ttl: 7 * DAY,
            page_size: 2500,
            declined_is_free: true,
        }
    }
}

/// The webhook address for a base URL (`https://app.example.com` + `path`). A base that already ends
/// with the path is kept as is.
pub fn webhook_address(base: &str, path: &str) -> String {
    let base = base.trim_end_matches('/');
    if base.ends_with(path) {
        base.to_string()
    } else {
        format!("{base}{path}")
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            request_timeout: Duration::from_secs(30),
            max_attempts: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            window_past: DAY,
            window_future: 180 * DAY,
            failures_before_full_resync: 3,
            lock_timeout: Duration::from_secs(120),
            min_interval: Duration::from_secs(1),
            buffer_events: 5000,
            lease: Duration::from_secs(30),
        }
    }
}

impl Config {
    /// Defaults, with `DATABASE_URL` taken from the environment when set.
    pub fn from_env() -> Self {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Defaults, reading environment variables through `get` (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        Config {
            database_url: Secret::new(get("DATABASE_URL").unwrap_or_default()),
            read_database_urls: get("DATABASE_READ_URL")
                .unwrap_or_default()
                .split_whitespace()
                .map(Secret::new)
                .collect(),
            max_replica_lag: Duration::from_secs(2),
            pooler: None,
            max_connections: 10,
            background_connections: None,
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(10),
            flag_cache_ttl: Duration::from_secs(30),
            stale_after: Duration::from_secs(24 * 3600),
            max_calendars_per_read: 1000,
            legacy_reads: LegacyReads::Off,
            sync_on_read: true,
            pending_grace: Duration::from_secs(20),
            poll_stale_after: Duration::from_secs(15 * 60),
            google: GoogleConfig::from_lookup(&get),
            microsoft: MicrosoftConfig::from_lookup(&get),
            caldav: CaldavConfig::from_lookup(&get),
            http: HttpConfig::default(),
            sync: SyncConfig::default(),
            log_level: get("CALSYNC_LOG").unwrap_or_else(|| "warn".into()),
        }
    }

    /// Whether reads must avoid named prepared statements: the `pooler` option, else Prisma's
    /// `pgbouncer=true` in the database URL.
    pub fn behind_pooler(&self) -> bool {
        self.pooler_at(self.database_url.expose())
    }

    /// As [`Config::behind_pooler`], for the server at `url` (a replica's).
    pub fn pooler_at(&self, url: &str) -> bool {
        self.pooler.unwrap_or_else(|| {
            let query = url.split_once('?').map(|(_, q)| q).unwrap_or("");
            query.split('&').any(|kv| {
                kv.split_once('=')
                    .is_some_and(|(k, v)| k == "pgbouncer" && v.eq_ignore_ascii_case("true"))
            })
        })
    }

    /// Connections reserved for background work (see `background_connections`).
    pub fn background_pool_size(&self) -> u32 {
        self.background_connections
            .unwrap_or((self.max_connections * 3 / 10).max(1))
            .min(self.max_connections - 1)
    }

    /// Checks the values once, at connect.
    pub fn validate(&self) -> Result<()> {
        if self.database_url.expose().is_empty() {
            return Err(Error::invalid(
                "no database configured: pass databaseUrl or set DATABASE_URL",
            ));
        }
        if self.max_connections < 2 {
            return Err(Error::invalid("maxConnections must be at least 2"));
        }
        if self
            .background_connections
            .is_some_and(|b| b == 0 || b >= self.max_connections)
        {
            return Err(Error::invalid(
                "backgroundConnections must be at least 1 and below maxConnections",
            ));
        }
        if self.sync.buffer_events == 0 {
            return Err(Error::invalid("syncBufferEvents must be at least 1"));
        }
        if self.connect_timeout.is_zero() {
            return Err(Error::invalid("connectTimeoutMs must be positive"));
        }
        if self.read_timeout.is_zero() {
            return Err(Error::invalid("readTimeoutMs must be positive"));
        }
        if !self.read_database_urls.is_empty() && self.max_replica_lag >= self.pending_grace {
            return Err(Error::invalid(
                "maxReplicaLagMs must be below pendingGraceMs: a replica that far behind could miss a change's pending mark for longer than reads may",
            ));
        }
        if self.google.page_size == 0 || self.google.page_size > 2500 {
            return Err(Error::invalid("googlePageSize must be between 1 and 2500"));
        }
        if self.microsoft.page_size == 0 || self.microsoft.page_size > 1000 {
            return Err(Error::invalid("microsoftPageSize must be between 1 and 1000"));
        }
        if self.microsoft.subscription_ttl > MICROSOFT_MAX_SUBSCRIPTION || self.microsoft.subscription_ttl.is_zero() {
            return Err(Error::invalid(
                "microsoftSubscriptionTtlMinutes must be between 1 and 10070",
            ));
        }
        if self.http.max_attempts == 0 {
            return Err(Error::invalid("maxAttempts must be at least 1"));
        }
        if self.max_calendars_per_read == 0 {
            return Err(Error::invalid("maxCalendarsPerRead must be at least 1"));
        }
        for (name, url) in [
            ("googleWebhookUrl", &self.google.webhook_url),
            ("microsoftWebhookUrl", &self.microsoft.webhook_url),
        ] {
            if let Some(url) = url.as_deref().filter(|u| !deliverable(u)) {
                return Err(Error::invalid(format!(
                    "{name} must be an https:// address (Google and Microsoft deliver only there; plain http is accepted for localhost only): {}",
                    url.split(['?', '#']).next().unwrap_or_default()
                )));
            }
        }
        crate::log::parse_threshold(&self.log_level)?;
        Ok(())
    }
}

/// Whether a provider can deliver notifications to `url`: https, or http to a loopback host (the
/// emulator and local development).
fn deliverable(url: &str) -> bool {
    match reqwest::Url::parse(url) {
        Ok(u) if u.scheme() == "https" => true,
        Ok(u) if u.scheme() == "http" => matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "[::1]")),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_addresses_must_be_deliverable() {
        assert!(deliverable("https://app.example.com/api/webhooks/x"));
        assert!(deliverable("http://127.0.0.1:3000/hook"));
        assert!(deliverable("http://localhost:3000/hook"));
        assert!(!deliverable("http://app.example.com/hook"));
        assert!(!deliverable("app.example.com/hook"));
        let mut cfg = Config::from_lookup(|k| (k == "DATABASE_URL").then(|| "postgres://x/y".to_string()));
        cfg.google.webhook_url = Some("http://app.example.com/hook?token=s3cret".into());
        let e = cfg.validate().unwrap_err();
        assert_eq!(e.code(), "INVALID_ARGUMENT");
        assert!(!e.to_string().contains("s3cret"), "{e}");
        cfg.google.webhook_url = None;
        cfg.log_level = "loud".into();
        assert_eq!(cfg.validate().unwrap_err().code(), "INVALID_ARGUMENT");
    }

    #[test]
    fn pgbouncer_parameter_means_pooler() {
        let with = |url: &str, pooler: Option<bool>| {
            let mut c = Config::from_lookup(|_| None);
            c.database_url = Secret::new(url);
            c.pooler = pooler;
            c.behind_pooler()
        };
        assert!(with("postgres://u:p@h:6543/db?sslmode=require&pgbouncer=true", None));
        assert!(!with("postgres://u:p@h:5432/db?pgbouncer=false", None));
        assert!(!with("postgres://u:p@h:5432/db", None));
        assert!(with("postgres://u:p@h:5432/db", Some(true)));
        assert!(!with("postgres://h/db?pgbouncer=true", Some(false)));
    }

    #[test]
    fn debug_redacts_database_url() {
        let cfg = Config::from_lookup(|k| (k == "DATABASE_URL").then(|| "postgres://u:hunter2@h/db".into()));
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("[redacted]"));
        assert!(cfg.validate().is_ok());
    }

    #[test]
    fn google_settings_from_environment() {
        let env = |k: &str| match k {
            "GOOGLE_API_CREDENTIALS" => Some(r#"{"web":{"client_id":"cid","client_secret":"shh"}}"#.to_string()),
            "NEXT_PUBLIC_WEBAPP_URL" => Some("https://app.example.com/".to_string()),
            "GOOGLE_WEBHOOK_TOKEN" => Some("tok".to_string()),
            _ => None,
        };
        let cfg = Config::from_lookup(env);
        assert_eq!(cfg.google.client_id.as_deref(), Some("cid"));
        assert_eq!(cfg.google.client_secret.as_ref().map(Secret::expose), Some("shh"));
        assert_eq!(
            cfg.google.webhook_url.as_deref(),
            Some("https://app.example.com/api/webhooks/calendar-subscription/google_calendar")
        );
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("shh") && !shown.contains("\"tok\""), "{shown}");
        assert_eq!(
            webhook_address(
                "https://x.io/api/webhooks/calendar-subscription/google_calendar",
                GOOGLE_WEBHOOK_PATH
            ),
            "https://x.io/api/webhooks/calendar-subscription/google_calendar"
        );
        assert_eq!(
            cfg.microsoft.webhook_url.as_deref(),
            Some("https://app.example.com/api/webhooks/calendar-subscription/office365_calendar")
        );
    }

    #[test]
    fn missing_url_is_invalid_argument() {
        let cfg = Config::from_lookup(|_| None);
        assert_eq!(cfg.validate().unwrap_err().code(), "INVALID_ARGUMENT");
    }
}
