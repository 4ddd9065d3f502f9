//! The sync engine (SPEC §6): full and incremental syncs written atomically with their token, one
//! sync per calendar at a time across processes, notifications coalesced, failures counted.
//!
//! No database connection, transaction or lock is held while the provider is asked (SPEC §6.8). A
//! sync first claims the calendar (`sync:<owner>` in `"CalendarSyncLease"`, one short write; syncs
//! of one calendar queue up across processes), then reads every page with no connection held,
//! keeping the changes in memory — pages beyond `buffer_events` are staged in
//! `"CalendarSyncStage"`, so memory stays bounded — and finally writes rows and the new sync token
//! in one short transaction that first checks, under the owner row's lock, that the stored token is
//! still the one the sync started from. Any failure leaves the old token with the old rows and is
//! recorded where reads see it, whatever failed (SPEC §6.9).

pub mod auth;
pub mod background;
pub mod bookings;
pub mod channels;
pub mod delegation;
pub mod gate;
pub mod marks;
mod run;

use std::collections::HashSet;
use std::time::Instant;

use chrono::NaiveDateTime;
use sqlx::PgPool;

use crate::config::Config;
use crate::db::calendars::{self, Group};
use crate::db::lease::{self, Lease};
use crate::db::outbox;
use crate::db::Pools;
use crate::error::{Error, Result};
use crate::flags::Flags;
use crate::providers::http::Http;
use crate::providers::{Provider, ProviderError, REGISTRY};
use crate::time::now_db;
use gate::Gates;

/// Receives booking changes as syncs write them (see [`Engine::set_booking_listener`]).
pub type BookingListener = std::sync::Arc<dyn Fn(Vec<outbox::Queued>) + Send + Sync>;
/// How many waiting changes one listener call takes at most.
const LISTENER_BATCH: i64 = 100;
/// How long changes handed to the listener are held before any taker gets them again.
pub const LISTENER_HOLD: std::time::Duration = std::time::Duration::from_secs(60);

/// What a sync did.
#[derive(Debug, Clone, Default)]
pub struct SyncReport {
    /// The row that holds the calendar's cached events.
    pub owner_id: String,
    pub full: bool,
    /// Why a full sync ran: `requested`, `first_sync`, `token_expired` or `repeated_failures`.
    pub full_reason: Option<&'static str>,
    pub pages: u32,
    pub upserted: u64,
    pub deleted: u64,
    /// True when a concurrent sync already covered this request and nothing ran.
    pub coalesced: bool,
    /// Changes of the app's bookings this sync wrote to the outbox (two-way sync).
    pub booking_changes: Vec<crate::db::outbox::Found>,
    /// Time spent waiting for the provider, in milliseconds.
    pub provider_ms: f64,
    /// Time spent writing cache rows, in milliseconds.
    pub db_ms: f64,
    /// Legacy `"CalendarCache"` rows rewritten (`calendar-cache-sql-write`).
    pub legacy_written: u32,
    /// Event-type groups left to the legacy path because a calendar of theirs cannot be vouched for.
    pub legacy_skipped: u32,
}

/// Syncs of one process running at once (each holds up to `buffer_events` events in memory).
const SYNCS_AT_ONCE: usize = 16;

/// The engine: database pools, configuration, provider clients, flags and coalescing gates.
pub struct Engine {
    /// Background work: syncs, token refreshes, cron.
    pub pool: PgPool,
    /// Answers to callers: reads, webhook checks, flags, status. Background work never uses it.
    pub front: PgPool,
    /// Hot standbys that serve reads while they keep up (`readDatabaseUrl`).
    pub replicas: crate::db::replicas::Replicas,
    /// Where on the primary's WAL this process's syncs committed, per calendar row (causal reads).
    pub commits: crate::db::replicas::Commits,
    /// Whether a transaction-mode pooler is in front of Postgres (reads then avoid named statements).
    pub pooled: std::sync::atomic::AtomicBool,
    pub cfg: Config,
    pub flags: Flags,
    /// The providers of [`REGISTRY`], built for this configuration.
    providers: Vec<std::sync::Arc<dyn Provider>>,
    gates: Gates,
    background: background::Tasks,
    /// Pending marks written before webhooks answer, group-committed per calendar.
    pub marks: marks::Marks,
    /// Rows whose sync-on-read is scheduled or running in this process.
    read_syncs: std::sync::Mutex<HashSet<String>>,
    /// Access tokens obtained through delegation credentials (memory only).
    delegated: delegation::DelegatedTokens,
    /// What this process did, for `metrics()`.
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
    /// Where booking changes go as soon as a sync has written them (two-way sync), if anywhere.
    booking_listener: std::sync::RwLock<Option<BookingListener>>,
    sync_slots: tokio::sync::Semaphore,
}

impl Engine {
    /// Builds the engine around an open pool.
    pub fn new(pools: Pools, cfg: Config) -> Result<Self> {
        let commits = crate::db::replicas::Commits::new(cfg.max_replica_lag);
        let metrics = std::sync::Arc::new(crate::metrics::Metrics::default());
        let http = Http::new(cfg.http.clone(), metrics.clone())?;
        let providers: Vec<_> = REGISTRY.iter().map(|(_, build, _)| build(&http, &cfg)).collect();
        for p in &providers {
            metrics.start_provider(p.label(), p.endpoints());
        }
        let reasons = crate::db::replicas::Fallback::ALL.map(|f| f.as_str());
        metrics.start_replicas(pools.replicas.list.len(), &reasons);
        Ok(Engine {
            flags: Flags::new(cfg.flag_cache_ttl),
            providers,
            gates: Gates::new(cfg.sync.min_interval),
            pool: pools.back,
            front: pools.front,
            replicas: pools.replicas,
            commits,
            pooled: std::sync::atomic::AtomicBool::new(cfg.behind_pooler()),
            cfg,
            background: background::Tasks::default(),
            read_syncs: Default::default(),
            booking_listener: Default::default(),
            delegated: Default::default(),
            metrics,
            marks: Default::default(),
            sync_slots: tokio::sync::Semaphore::new(SYNCS_AT_ONCE),
        })
    }

    /// After a sync of `group` committed in transaction `xid`, with replicas: notes it, so that
    /// this process reads the calendar from a replica only once the replica's snapshot sees it.
    pub(crate) fn note_commit(&self, group: &crate::db::calendars::Group, xid: i64) {
        let user = crate::db::replicas::Commits::user_key(group.user_id);
        let keys = [group.owner_id.as_str(), user.as_str()]
            .into_iter()
            .chain(group.row_ids.iter().map(String::as_str));
        self.commits.record(keys, xid, std::time::Instant::now());
    }

    /// The provider of calendars of `integration`.
    pub fn provider(&self, integration: &str) -> Result<&dyn Provider> {
        self.providers
            .iter()
            .find(|p| p.integration() == integration)
            .map(|p| p.as_ref())
            .ok_or_else(|| Error::invalid(format!("calsync does not sync '{integration}' calendars")))
    }

    /// Every provider calsync syncs, in [`REGISTRY`] order.
    pub fn providers(&self) -> impl Iterator<Item = &dyn Provider> {
        self.providers.iter().map(|p| p.as_ref())
    }

    /// The metrics label of `integration`'s provider (`other` for none).
    pub fn label(&self, integration: &str) -> &'static str {
        self.provider(integration).map_or("other", |p| p.label())
    }

    /// An access token for the group's credential: the user's own OAuth grant, or else the
    /// organisation's delegation credential. `rejected` names a token the provider just refused.
    pub async fn access_token(&self, group: &Group, rejected: Option<&str>) -> Result<String> {
        let source = self.provider(&group.integration)?;
        match (group.credential_id, &group.delegation_id) {
            (Some(credential), _) => {
                auth::access_token(&self.pool, source, credential, rejected, self.refresh_claim()).await
            }
            (None, Some(delegation)) => delegation::access_token(self, delegation, group, rejected).await,
            (None, None) => Err(Error::invalid(format!(
                "selected calendar {} has no credential",
                group.owner_id
            ))),
        }
    }

    /// Access through credential `id` of `integration`'s provider (its own grant, not delegation).
    pub async fn credential_access(&self, integration: &str, id: i32) -> Result<String> {
        let source = self.provider(integration)?;
        auth::access_token(&self.pool, source, id, None, self.refresh_claim()).await
    }

    /// How long a token refresh's claim lasts: the whole token request with its retries.
    fn refresh_claim(&self) -> std::time::Duration {
        (self.cfg.http.request_timeout * 2).max(self.cfg.sync.lease)
    }

    /// Runs `task` after the current request has been answered; `settle()` waits for it.
    pub fn in_background(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.background.spawn(task);
    }

    /// Schedules one background sync for each of these rows (sync-on-read, SPEC §4) and returns at
    /// once. A row already scheduled in this process is skipped; across processes, a calendar gets at
    /// most one such sync per minute (a `read-sync:<id>` claim that is left to expire).
    pub fn sync_on_read(engine: &std::sync::Arc<Engine>, ids: &[String]) {
        for id in ids {
            if !engine
                .read_syncs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id.clone())
            {
                continue;
            }
            let (engine, id) = (engine.clone(), id.clone());
            let task_engine = engine.clone();
            engine.in_background(async move {
                let e = &task_engine;
                let key = format!("read-sync:{id}");
                match lease::try_take(&e.pool, &key, std::time::Duration::from_secs(60)).await {
                    Ok(Some(_claim)) => {
                        if let Err(err) = e.sync_notified(&id).await {
                            tracing::debug!(calendar = %id, code = err.code(), "sync-on-read failed");
                        }
                    }
                    Ok(None) => {} // another process synced it for a read within the last minute
                    Err(err) => tracing::debug!(calendar = %id, error = %err, "sync-on-read not scheduled"),
                }
                e.read_syncs.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
            });
        }
    }

    /// Hands booking changes to `listener` as syncs write them (`None` stops): after each sync that
    /// wrote any, a batch of waiting changes is taken (held for [`LISTENER_HOLD`]) and passed on. The
    /// app acknowledges them as it would after `take_booking_changes`.
    pub fn set_booking_listener(&self, listener: Option<BookingListener>) {
        *self.booking_listener.write().unwrap_or_else(|p| p.into_inner()) = listener;
    }

    fn deliver_booking_changes(&self) {
        let Some(listener) = self.booking_listener.read().unwrap_or_else(|p| p.into_inner()).clone() else {
            return;
        };
        let pool = self.pool.clone();
        self.in_background(async move {
            match outbox::take(&pool, LISTENER_BATCH, LISTENER_HOLD, now_db()).await {
                Ok(batch) if !batch.is_empty() => listener(batch),
                Ok(_) => {} // another taker had them
                Err(e) => tracing::warn!(
                    code = e.code(),
                    "booking changes not handed to the listener; they wait in the outbox"
                ),
            }
        });
    }

    /// Waits up to `limit` for the background work started so far (and what it starts in turn);
    /// returns how many of those tasks still run (0: all finished). Work started after the call is
    /// not waited for.
    pub async fn settle(&self, limit: std::time::Duration) -> usize {
        self.background.settle(limit).await
    }

    /// Syncs the calendar of row `id` now (`full` forces a full sync), waiting for any sync of the
    /// same calendar in another process.
    pub async fn sync(&self, id: &str, full: bool) -> Result<SyncReport> {
        let mut force = full.then_some("requested");
        let mut moved = 0;
        loop {
            match self.sync_once(id, force).await {
                // The provider refused the sync token: start over with a full sync.
                Err(Restart::FullSync) => force = Some("token_expired"),
                // Another sync committed while this one ran (its claim had expired): start over
                // from the new token.
                Err(Restart::Moved) if moved < 3 => moved += 1,
                Err(Restart::Moved) => {
                    return Err(Error::Database(format!(
                        "calendar {id} kept changing underneath its sync; try again"
                    )))
                }
                Err(Restart::Failed(e)) => return Err(e),
                Ok(report) => return Ok(report),
            }
        }
    }

    /// Takes a coalescing ticket for notification key `key` (a channel or subscription id, known
    /// before any database lookup), so a burst registers at once.
    pub fn ticket(&self, key: &str) -> gate::Ticket {
        self.gates.ticket(key)
    }

    /// Runs `work` unless a run that started after `ticket` was taken already covered it:
    /// notifications that arrive while one runs are coalesced into exactly one follow-up. `None`
    /// when coalesced.
    pub async fn coalesce<T, Fut: std::future::Future<Output = T>>(
        &self,
        ticket: gate::Ticket,
        work: impl FnOnce() -> Fut,
    ) -> Option<T> {
        self.gates.run_ticket(ticket, work).await
    }

    /// Syncs after a notification: requests that arrive while a sync of the same calendar runs in
    /// this process are coalesced into exactly one follow-up sync.
    pub async fn sync_notified(&self, id: &str) -> Result<SyncReport> {
        let group = calendars::group_of(&self.pool, id)
            .await?
            .ok_or_else(|| not_found(id))?;
        match self.gates.run(&group.owner_id, || self.sync(id, false)).await {
            Some(result) => result,
            None => {
                let provider = self.label(&group.integration);
                crate::metrics::Metrics::inc(&self.metrics.syncs, &[provider, "incremental", "coalesced"]);
                Ok(SyncReport {
                    owner_id: group.owner_id,
                    coalesced: true,
                    ..Default::default()
                })
            }
        }
    }

    async fn sync_once(&self, id: &str, force_full: Option<&'static str>) -> Result<SyncReport, Restart> {
        let _slot = self.sync_slots.acquire().await.map_err(|_| Error::Closed)?;
        let (group, claim) = self.claim(id).await?;
        let started = Instant::now();
        let result = self.sync_claimed(&group, force_full, &claim).await;
        if let Err(Restart::Failed(e)) = &result {
            self.record_failure(&group, e).await;
        }
        let full = match &result {
            Ok(report) => report.full,
            Err(_) => force_full.is_some() || group.sync_token.is_none(),
        };
        let outcome = match &result {
            Ok(_) => "ok",
            Err(Restart::Failed(_)) => "failed",
            Err(_) => "restarted",
        };
        let (provider, kind) = (
            self.label(&group.integration),
            if full { "full" } else { "incremental" },
        );
        crate::metrics::Metrics::inc(&self.metrics.syncs, &[provider, kind, outcome]);
        self.metrics
            .sync_seconds
            .with_label_values(&[provider, kind])
            .observe(started.elapsed().as_secs_f64());
        // A sync that committed ended its claim in the same transaction.
        if result.is_err() {
            claim.release(&self.pool).await;
        }
        result
    }

    /// Row `id`'s group, read under its sync claim, waiting up to `lock_timeout` for another
    /// process's sync of the calendar to end (or its claim to expire).
    async fn claim(&self, id: &str) -> Result<(Group, Lease), Restart> {
        let holder = uuid::Uuid::new_v4().to_string();
        let mut waiting = lease::Waiting::new(self.cfg.sync.lock_timeout);
        loop {
            let (group, key, taken) = match calendars::claim_group(&self.pool, id, &holder, self.cfg.sync.lease).await {
                Ok(Some(found)) => found,
                Ok(None) => return Err(not_found(id).into()),
                Err(e) => {
                    // The background pool may be what failed: the group for the record comes through
                    // the front pool.
                    if let Ok(Some(group)) = calendars::group_of(&self.front, id).await {
                        self.record_failure(&group, &e).await;
                    }
                    return Err(e.into());
                }
            };
            if taken {
                return Ok((group, Lease::held(key, holder)));
            }
            if !waiting.pause().await {
                // Not recorded as the calendar's failure: the holder's sync may well succeed, and a
                // change it does not cover keeps its pending mark (re-driven, stale past the grace).
                let e = waiting.timed_out(&key);
                tracing::info!(calendar = %group.owner_id, code = e.code(), "gave up waiting for another process's sync of the calendar");
                return Err(e.into());
            }
        }
    }

    async fn record_failure(&self, group: &Group, e: &Error) {
        if matches!(e, Error::ProviderConfig(_)) {
            // calsync's own configuration is wrong, not this calendar: nothing is written to Cal.com's
            // tables (the provider's refusal was reported once, and token requests pause).
            return;
        }
        let drop_token = group.sync_error_count + 1 >= self.cfg.sync.failures_before_full_resync;
        // Through the front pool: when the failure is the background pool's exhaustion, recording
        // it there would fail the same way.
        if let Err(db) =
            calendars::record_sync_failure(&self.front, &group.row_ids, now_db(), drop_token, e.code()).await
        {
            tracing::error!(calendar = %group.owner_id, error = %db, "could not record a sync failure");
        }
        tracing::warn!(calendar = %group.owner_id, integration = %group.integration, code = e.code(), error = %e, "sync failed");
    }

    /// Whether the window of calendar `owner` runs short enough to slide it forward with a full
    /// resync: when less than two thirds of `syncWindowFutureDays` are left, less a share of up to a
    /// sixth that depends on the calendar, so calendars synced together (a rollout wave) resync on
    /// different days. With the default 180 days, a window is refreshed 90–120 days before its end,
    /// so the next 3 months are always inside it.
    pub fn window_due(&self, owner: &str, window_end: Option<NaiveDateTime>, now: NaiveDateTime) -> bool {
        let Some(end) = window_end else { return false };
        let future = chrono::Duration::from_std(self.cfg.sync.window_future).unwrap_or_default();
        let spread_ms = (future.num_milliseconds() / 6).max(1) as u64;
        let jitter = chrono::Duration::milliseconds((stable_hash(owner) % spread_ms) as i64);
        end - now < future * 2 / 3 - jitter
    }

    /// The window a full sync starting at `now` covers.
    pub fn window(&self, now: NaiveDateTime) -> (NaiveDateTime, NaiveDateTime) {
        let past = chrono::Duration::from_std(self.cfg.sync.window_past).unwrap_or_default();
        let future = chrono::Duration::from_std(self.cfg.sync.window_future).unwrap_or_default();
        (now - past, now + future)
    }
}

/// Why `sync_once` stopped early.
enum Restart {
    /// The sync token was refused: run again as a full sync.
    FullSync,
    /// Another sync committed first: run again from the token it stored.
    Moved,
    Failed(Error),
}

impl From<Error> for Restart {
    fn from(e: Error) -> Self {
        Restart::Failed(e)
    }
}

impl From<ProviderError> for Restart {
    fn from(e: ProviderError) -> Self {
        Restart::Failed(e.into())
    }
}

/// A hash of `s` that is the same in every process and release (FNV-1a).
fn stable_hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

fn not_found(id: &str) -> Error {
    Error::NotFound(format!("selected calendar {id} does not exist"))
}
