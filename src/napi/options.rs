//! The options of `CalendarSync.connect` as JS passes them, and where logs go. Doc comments become
//! the TypeScript docs.

use std::time::Duration;

use napi_derive::napi;

use crate::config::{webhook_address, Config, Secret, GOOGLE_WEBHOOK_PATH, MICROSOFT_WEBHOOK_PATH};

/// Options for `CalendarSync.connect`. Every field is optional and defaults from the environment.
#[napi(object, object_to_js = false)]
#[derive(Default)]
pub struct ConnectOptions {
    /// Postgres connection string. Default: `DATABASE_URL`.
    pub database_url: Option<String>,
    /// Hot standbys (streaming replicas) of that database for reads: one URL or a list, taken in
    /// turn. `getCachedAvailability` and flag reads go to a replica while it keeps within
    /// `maxReplicaLagMs` (measured by the read itself) and has replayed this process's syncs of the
    /// calendars read; otherwise, and whenever a replica fails, to the primary, without an error.
    /// Writes, claims, marks and syncs always go to `databaseUrl`. Default: `DATABASE_READ_URL`
    /// (URLs separated by spaces).
    pub read_database_url: Option<napi::Either<String, Vec<String>>>,
    /// Milliseconds of replay lag past which a replica is not read from. Must be below
    /// `pendingGraceMs`. Default 2000.
    pub max_replica_lag_ms: Option<u32>,
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
    /// Milliseconds after its last successful poll a polled calendar (CalDAV, iCloud) reads
    /// `stale`. Default 900000 (15 min, three default poll intervals).
    pub poll_stale_ms: Option<u32>,
    /// The key Cal.com encrypts CalDAV and Apple credentials with. Default `CALENDSO_ENCRYPTION_KEY`.
    pub calendso_encryption_key: Option<String>,
    /// Apple's CalDAV server. Default `https://caldav.icloud.com` (env `APPLE_CALDAV_URL`).
    pub apple_caldav_url: Option<String>,
    /// Calendar objects fetched per CalDAV `calendar-multiget`. Default 100.
    pub caldav_page_size: Option<u32>,
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
        if let Some(urls) = self.read_database_url {
            let urls = match urls {
                napi::Either::A(url) => vec![url],
                napi::Either::B(urls) => urls,
            };
            // Empty strings are no replica (an unset variable interpolated into the option).
            cfg.read_database_urls = urls
                .into_iter()
                .filter(|u| !u.trim().is_empty())
                .map(Secret::new)
                .collect();
        }
        if let Some(v) = self.max_replica_lag_ms {
            cfg.max_replica_lag = ms(v);
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
        if let Some(v) = self.poll_stale_ms {
            cfg.poll_stale_after = ms(v);
        }
        if let Some(v) = self.calendso_encryption_key {
            cfg.caldav.encryption_key = Some(Secret::new(v));
        }
        if let Some(v) = self.apple_caldav_url {
            cfg.caldav.apple_url = v;
        }
        if let Some(v) = self.caldav_page_size {
            cfg.caldav.page_size = v.max(1) as usize;
        }
        if let Some(v) = self.claim_ttl_ms {
            cfg.sync.lease = ms(v.max(100));
            cfg.sync.lock_timeout = cfg.sync.lease * 4;
        }
        Ok(cfg)
    }
}
