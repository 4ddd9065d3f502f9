//! The `CalendarSync` class and the free functions exported to JS.

use std::sync::{Arc, RwLock};

use napi::bindgen_prelude::Unknown;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Result, Status};
use napi_derive::napi;

use super::js_error;
use super::types::{
    AvailabilityArgs, ConnectOptions, FlagTarget, PackedAvailability, SchemaOptions, SubscribeResult, SyncOptions,
    SyncResult, WebhookOptions, WebhookResponse,
};
use super::types::{BookingChange, TakeOptions};
use super::types::{
    CleanupOptions, CleanupResult, DropLegacyOptions, HealthCount, LegacyScope, LegacyStage, LegacyVerdict,
    PollOptions, PollReport, RenewProgress, RenewReport, RenewWatchesOptions, SettleOptions, Settled,
};
use crate::cache::{Query, Selection};
use crate::error::Error;
use crate::flags::Subject;
use crate::time::parse_iso;
use crate::webhook::Request;
use crate::{db, Calsync};

/// The JS callback of `onBookingChanges`: called with the changes, never keeping Node alive.
type BookingCallback =
    ThreadsafeFunction<Vec<BookingChange>, Unknown<'static>, Vec<BookingChange>, Status, false, true>;

/// A connected calsync instance. Create it with `CalendarSync.connect()`; release it with `close()`.
#[napi]
pub struct CalendarSync {
    inner: RwLock<Option<Arc<Calsync>>>,
}

impl CalendarSync {
    fn core(&self) -> Result<Arc<Calsync>> {
        let guard = self.inner.read().unwrap_or_else(|p| p.into_inner());
        guard.clone().ok_or_else(|| js_error(Error::Closed))
    }
}

#[napi]
impl CalendarSync {
    /// Connects to Postgres (options default from environment variables) and checks that the
    /// tables and columns calsync needs exist. Rejects with `DB_UNAVAILABLE` within
    /// `connectTimeoutMs` when the server cannot be reached, `SCHEMA_MISMATCH` naming what is
    /// missing, or `INVALID_ARGUMENT`.
    #[napi(factory)]
    pub async fn connect(options: Option<ConnectOptions>) -> Result<CalendarSync> {
        let mut options = options.unwrap_or_default();
        let sink = options
            .logger
            .take()
            .map(|f| Arc::new(super::types::JsLog(f)) as Arc<dyn crate::log::Sink>);
        let config = options.into_config().map_err(js_error)?;
        let core = Calsync::connect_logged(config, sink).await.map_err(js_error)?;
        Ok(CalendarSync {
            inner: RwLock::new(Some(Arc::new(core))),
        })
    }

    /// The binding behind `getCachedAvailability` (calsync.js), which expands this compact answer
    /// into busy-block objects; call that instead. Busy blocks from the cache for
    /// `[timeMin, timeMax)`; calendars the cache cannot answer for truthfully are listed in
    /// `uncached` with a reason, never answered as free. One SQL round trip when the flags are
    /// cached. Rejects with `INVALID_ARGUMENT` for bad input, `DB_UNAVAILABLE` when the database
    /// cannot be reached or gives no answer within `readTimeoutMs`.
    #[napi]
    pub async fn get_cached_availability_packed(&self, args: AvailabilityArgs) -> Result<PackedAvailability> {
        let core = self.core()?;
        let query = build_query(args, core.config().max_calendars_per_read).map_err(js_error)?;
        let answer = core.availability(&query).await.map_err(js_error)?;
        Ok(answer.into())
    }

    /// Whether feature flag `slug` is on for a user (`{ userId }`) or a team (`{ teamId }`):
    /// global flag AND (user row, else any accepted team or its organizations). Answers are cached
    /// in-process for `flagCacheTtlMs`.
    #[napi]
    pub async fn is_feature_enabled(&self, slug: String, target: FlagTarget) -> Result<bool> {
        let core = self.core()?;
        let who = match (target.user_id, target.team_id) {
            (Some(u), None) => Subject::User(u),
            (None, Some(t)) => Subject::Team(t),
            _ => return Err(js_error(Error::invalid("pass exactly one of userId or teamId"))),
        };
        if slug.is_empty() {
            return Err(js_error(Error::invalid("slug must not be empty")));
        }
        core.is_feature_enabled(&slug, who).await.map_err(js_error)
    }

    /// Handles a Google Calendar push notification. Pass the request parts as strings
    /// (`{ headers, query, body }`); send back the returned `{ status, headers, body }` verbatim.
    /// Never throws for bad input: a forged or missing channel token is a 401/403 response and
    /// causes no database write. A change notification is checked against its channel (a database
    /// outage is a 503, which Google retries), answered 200, and the incremental sync runs in the
    /// background, coalesced per calendar (`syncMinIntervalMs`). Pass `{ waitForSync: true }` to
    /// answer only once the change is in the cache, or call `settle()` (for example inside
    /// `waitUntil`) on hosts that freeze the process once the response is sent.
    #[napi(
        ts_args_type = "request: { headers: Record<string, string | string[] | undefined>, query?: string, body?: string }, options?: WebhookOptions | undefined | null"
    )]
    pub async fn handle_google_webhook(
        &self,
        request: serde_json::Value,
        options: Option<WebhookOptions>,
    ) -> Result<WebhookResponse> {
        let core = self.core()?;
        Ok(core
            .handle_webhook(
                crate::providers::google::INTEGRATION,
                &Request::from_json(&request),
                WebhookOptions::wait(options),
            )
            .await
            .into())
    }

    /// Handles a Microsoft Graph request to the Outlook webhook route. Pass `{ headers, query, body }`
    /// as strings; send back the returned `{ status, headers, body }` verbatim. A `validationToken`
    /// in the query is answered with 200 `text/plain` and the decoded token only. Notification items
    /// are checked one by one (`clientState`, constant time); the answer is 202 and the syncs run
    /// in the background — pass `{ waitForSync: true }`, or call `settle()` (for example inside
    /// `waitUntil`), on hosts that freeze the process once the response is sent. Never throws.
    #[napi(
        ts_args_type = "request: { headers?: Record<string, string | string[] | undefined>, query?: string, body?: string }, options?: WebhookOptions | undefined | null"
    )]
    pub async fn handle_microsoft_webhook(
        &self,
        request: serde_json::Value,
        options: Option<WebhookOptions>,
    ) -> Result<WebhookResponse> {
        let core = self.core()?;
        Ok(core
            .handle_webhook(
                crate::providers::microsoft::INTEGRATION,
                &Request::from_json(&request),
                WebhookOptions::wait(options),
            )
            .await
            .into())
    }

    /// Waits for every sync started in the background so far (by webhooks, reads or renewals) to
    /// finish, for at most `timeoutMs` (default 30000). Resolves to `{ settled, running }`:
    /// `settled` false means `running` syncs were still going when the time ran out (their changes
    /// stay recorded as pending and any process re-drives them). Never waits forever.
    #[napi(ts_args_type = "options?: { timeoutMs?: number } | undefined | null")]
    pub async fn settle(&self, options: Option<SettleOptions>) -> Result<Settled> {
        let limit = options.and_then(|o| o.timeout_ms).unwrap_or(30_000.0);
        if !limit.is_finite() || limit < 0.0 {
            return Err(js_error(Error::invalid("timeoutMs must be a non-negative number")));
        }
        let running = self
            .core()?
            .settle(std::time::Duration::from_secs_f64(limit / 1000.0))
            .await;
        Ok(Settled {
            settled: running == 0,
            running: running as u32,
        })
    }

    /// Opens a push channel for the calendar of `SelectedCalendar` row `selectedCalendarId` (shared
    /// by every row that selects the same provider calendar), stops the previous one, and syncs.
    /// Rejects with `NOT_FOUND`, `PROVIDER_AUTH`, `PROVIDER_UNAVAILABLE` or `INVALID_ARGUMENT`.
    #[napi]
    pub async fn subscribe(&self, selected_calendar_id: String) -> Result<SubscribeResult> {
        let core = self.core()?;
        Ok(core.subscribe(&selected_calendar_id).await.map_err(js_error)?.into())
    }

    /// Stops the calendar's push channel and deletes its cached events. Resolves to the number of
    /// cached events deleted.
    #[napi]
    pub async fn unsubscribe(&self, selected_calendar_id: String) -> Result<i64> {
        let core = self.core()?;
        Ok(core.unsubscribe(&selected_calendar_id).await.map_err(js_error)? as i64)
    }

    /// Syncs the calendar now: incremental with the stored sync token, or full (over the sync
    /// window) when there is none, when it expired, or with `{ full: true }`. Rows and the new token
    /// are committed together; on failure nothing changes but the error count.
    #[napi]
    pub async fn sync_calendar(
        &self,
        selected_calendar_id: String,
        options: Option<SyncOptions>,
    ) -> Result<SyncResult> {
        let core = self.core()?;
        let full = options.and_then(|o| o.full).unwrap_or(false);
        Ok(core
            .sync_calendar(&selected_calendar_id, full)
            .await
            .map_err(js_error)?
            .into())
    }

    /// The cron pass (SPEC §7): subscribes calendars that should be watched (flag on for the user,
    /// supported provider, valid credential, not a generic Google calendar) and have no channel;
    /// renews channels expiring within `marginMs`; shares a calendar's channel with all its rows;
    /// stops channels of calendars that should no longer be watched and deletes their cached rows;
    /// then resyncs watched calendars not synced for `resyncAfterMs` (the safety net). Safe to run
    /// from several processes at once; provider calls are bounded per provider.
    #[napi]
    pub async fn renew_watches(&self, options: Option<RenewWatchesOptions>) -> Result<RenewReport> {
        let core = self.core()?;
        let opts = options.unwrap_or_default().into_options();
        Ok(core.renew_watches(&opts).await.map_err(js_error)?.into())
    }

    /// Polls the calendars whose provider has no push (CalDAV, Apple iCloud): each one whose last
    /// successful poll is older than `intervalMs` is synced incrementally (one request to its server
    /// when nothing changed). Run it from a cron route every minute or few; a server that fails as
    /// unavailable is left for the next run, and a calendar whose poll fails reads `sync_failed`.
    #[napi]
    pub async fn poll_calendars(&self, options: Option<PollOptions>) -> Result<PollReport> {
        let core = self.core()?;
        let opts = options.unwrap_or_default().into_options();
        Ok(core.poll_calendars(&opts).await.map_err(js_error)?.into())
    }

    /// Deletes cached events that ended before `before` (default now), events of calendars no
    /// longer watched, and expired legacy `CalendarCache` rows, `batchSize` rows per statement.
    #[napi]
    pub async fn cleanup(&self, options: Option<CleanupOptions>) -> Result<CleanupResult> {
        let core = self.core()?;
        let options = options.unwrap_or_default();
        let cutoff = match options.before {
            Some(b) => parse_iso("before", &b).map_err(js_error)?.naive_utc(),
            None => crate::time::now_db(),
        };
        let size = options.batch_size.unwrap_or(5000).max(1) as i64;
        Ok(core.cleanup(cutoff, size).await.map_err(js_error)?.into())
    }

    /// Compares each live legacy `"CalendarCache"` row (Cal.com's JSON cache, SPEC §8) of a user, a
    /// team's members, or everyone, with the SQL cache over the part of its window from now on.
    /// One entry per row: `equal`, `diverged` (with each differing interval: `missing_block`,
    /// `extra_block` or `different_bounds`, by calendar id — never event contents), or
    /// `not_comparable` with a reason (`malformed_row`, `not_selected`, or why the SQL cache cannot
    /// vouch for a calendar). Rejects with `NOT_FOUND` for an unknown user or team.
    #[napi(ts_args_type = "scope?: { userId?: number, teamId?: number } | undefined | null")]
    pub async fn verify_legacy_cache(&self, scope: Option<LegacyScope>) -> Result<Vec<LegacyVerdict>> {
        let core = self.core()?;
        let scope = match scope.map(|s| (s.user_id, s.team_id)) {
            None | Some((None, None)) => crate::legacy::Scope::All,
            Some((Some(u), None)) => crate::legacy::Scope::User(u),
            Some((None, Some(t))) => crate::legacy::Scope::Team(t),
            Some(_) => return Err(js_error(Error::invalid("pass userId or teamId, not both"))),
        };
        let verdicts = core.verify_legacy(scope).await.map_err(js_error)?;
        Ok(verdicts.into_iter().map(Into::into).collect())
    }

    /// Where the migration from the legacy JSON cache stands: users with legacy rows, how many of
    /// them have `calendar-cache-sql-write` and `calendar-cache-sql` on, the live and expired
    /// legacy rows, the teams with a row for either flag, and the latest differences shadow reads
    /// recorded (`npx calsync migrate status`).
    #[napi]
    pub async fn legacy_cache_stage(&self) -> Result<LegacyStage> {
        let st = self.core()?.legacy_stage().await.map_err(js_error)?;
        Ok(st.into())
    }

    /// The migration's last stage: deletes every legacy `"CalendarCache"` row (in batches of
    /// `batchSize`, default 5000) and resolves to how many — only once every user who has legacy
    /// rows reads from the SQL cache (`calendar-cache-sql`); otherwise rejects with
    /// `INVALID_ARGUMENT` saying how many do not, and deletes nothing.
    #[napi(ts_args_type = "options?: { batchSize?: number } | undefined | null")]
    pub async fn drop_legacy_cache(&self, options: Option<DropLegacyOptions>) -> Result<i64> {
        let batch = options.and_then(|o| o.batch_size).unwrap_or(5000).max(1) as i64;
        Ok(self.core()?.drop_legacy(batch).await.map_err(js_error)? as i64)
    }

    /// Two-way sync: takes up to `limit` (default 100, at most 1000) changes of the app's bookings
    /// that syncs found at the providers and nobody holds, oldest first, and holds them for this
    /// caller for `holdMs` (default 60000). Handle each (reschedule or cancel the booking with that
    /// `uid`; a change may come more than once), then `ackBookingChanges` their ids. A change not
    /// acknowledged in time — the process died, say — is handed out again.
    #[napi(ts_args_type = "options?: { limit?: number; holdMs?: number } | undefined | null")]
    pub async fn take_booking_changes(&self, options: Option<TakeOptions>) -> Result<Vec<BookingChange>> {
        let (limit, hold) = options.map_or((None, None), |o| (o.limit, o.hold_ms));
        let limit = limit.unwrap_or(100);
        if !(1..=1000).contains(&limit) {
            return Err(js_error(Error::invalid("limit must be between 1 and 1000")));
        }
        let hold = std::time::Duration::from_millis(hold.unwrap_or(60_000) as u64);
        let taken = self
            .core()?
            .take_booking_changes(limit as i64, hold)
            .await
            .map_err(js_error)?;
        Ok(taken.into_iter().map(Into::into).collect())
    }

    /// Two-way sync: removes handled booking changes by the `id`s `takeBookingChanges` (or the
    /// `onBookingChanges` callback) gave. An id whose change was replaced by a newer one since
    /// removes nothing: the newer change stays for the next take. Resolves to how many were removed.
    #[napi]
    pub async fn ack_booking_changes(&self, ids: Vec<String>) -> Result<i64> {
        let ids = ids
            .iter()
            .map(|id| id.parse::<i64>())
            .collect::<std::result::Result<Vec<i64>, _>>()
            .map_err(|_| js_error(Error::invalid("ids must be the id strings takeBookingChanges gave")))?;
        Ok(self.core()?.ack_booking_changes(&ids).await.map_err(js_error)? as i64)
    }

    /// Two-way sync: calls `callback` with booking changes as soon as a sync (in the background
    /// too) has written them, held for 60 s as `takeBookingChanges` would; acknowledge them with
    /// `ackBookingChanges`. The callback never keeps Node running. `null` stops the calls. Changes
    /// the callback did not acknowledge are handed out again by the next take.
    #[napi(ts_args_type = "callback: ((changes: BookingChange[]) => void) | null")]
    pub fn on_booking_changes(&self, callback: Option<BookingCallback>) -> Result<()> {
        let listener = callback.map(|tsfn| {
            let tsfn = Arc::new(tsfn);
            Arc::new(move |batch: Vec<crate::db::outbox::Queued>| {
                let batch: Vec<BookingChange> = batch.into_iter().map(Into::into).collect();
                tsfn.call(batch, ThreadsafeFunctionCallMode::NonBlocking);
            }) as crate::sync::BookingListener
        });
        self.core()?.on_booking_changes(listener);
        Ok(())
    }

    /// What this instance did since it connected, in the Prometheus text exposition format
    /// (version 0.0.4: serve it as `text/plain; version=0.0.4`), every name prefixed `calsync_`:
    /// webhooks, syncs (with durations), propagation lag, reads and uncached calendars by reason,
    /// provider requests and retries, token refreshes, renewals, shadow comparisons; and, read at
    /// each call, pending notifications, booking changes waiting and pool connections. No label
    /// carries a calendar, user or event id. docs/operations.md lists every family.
    #[napi]
    pub async fn metrics(&self) -> Result<String> {
        self.core()?.metrics().await.map_err(js_error)
    }

    /// Calendars counted by provider and health, for dashboards and `npx calsync status`.
    #[napi]
    pub async fn status(&self) -> Result<Vec<HealthCount>> {
        let core = self.core()?;
        let rows = core
            .status(std::time::Duration::from_secs(86_400))
            .await
            .map_err(js_error)?;
        Ok(rows
            .into_iter()
            .map(|h| HealthCount {
                integration: h.integration,
                health: h.health.to_string(),
                reason: h.reason,
                calendars: h.calendars as i64,
            })
            .collect())
    }

    /// Progress of the current (or last) `renewWatches` run. Synchronous.
    #[napi]
    pub fn progress(&self) -> Result<RenewProgress> {
        let (done, total) = self.core()?.progress();
        Ok(RenewProgress {
            done: done as i64,
            total: total as i64,
        })
    }

    /// Closes the connection pool. Later calls reject with `CLOSED`; closing twice is harmless.
    #[napi]
    pub async fn close(&self) -> Result<()> {
        let taken = self.inner.write().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(core) = taken {
            core.close().await;
        }
        Ok(())
    }
}

fn build_query(args: AvailabilityArgs, max_calendars: usize) -> crate::Result<Query> {
    let selection = match (args.selected_calendar_ids, args.user_id) {
        (Some(ids), None) if args.event_type_id.is_none() => Selection::Ids(ids),
        (Some(_), None) => return Err(Error::invalid("eventTypeId goes with userId, not selectedCalendarIds")),
        (None, Some(user_id)) => Selection::User {
            user_id,
            event_type_id: args.event_type_id,
        },
        _ => return Err(Error::invalid("pass exactly one of selectedCalendarIds or userId")),
    };
    let time_min = parse_iso("timeMin", &args.time_min)?;
    let time_max = parse_iso("timeMax", &args.time_max)?;
    Query::new(selection, time_min, time_max, max_calendars)
}

/// Shifts calsync's clock by `offsetMs` milliseconds for every instance in this process (0 restores
/// the system clock). For simulations and tests in which weeks must pass — the providers (or the
/// emulator: `emulator.setClock`) must be shifted alike. Never use it in production.
#[napi]
pub fn shift_clock_for_testing(offset_ms: i64) {
    crate::time::set_offset_ms(offset_ms);
}

/// Applies calsync's own tables, and the Cal.com subset unless `calcom: false` — only into a
/// database that has none of Cal.com's tables yet: against a real Cal.com database it creates,
/// alters, indexes and inserts nothing in Cal.com's tables. Idempotent. Resolves to what it did
/// with the Cal.com tables: `created`, `existing` (left alone) or `not_requested`. Used by
/// `npx calsync schema`, tests and the demo.
#[napi]
pub async fn apply_schema(options: Option<SchemaOptions>) -> Result<String> {
    let options = options.unwrap_or(SchemaOptions {
        database_url: None,
        calcom: None,
    });
    let config = ConnectOptions {
        database_url: options.database_url,
        ..Default::default()
    }
    .into_config()
    .map_err(js_error)?;
    config.validate().map_err(js_error)?;
    let pools = db::connect(&config).await.map_err(js_error)?;
    let applied = db::schema::apply(&pools.front, options.calcom.unwrap_or(true)).await;
    pools.close().await;
    applied.map(|t| t.as_str().to_string()).map_err(js_error)
}
