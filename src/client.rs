//! `Calsync`: the connected library, free of napi types so `cargo test` and other Rust callers can
//! use it directly. The JS class in `napi/` wraps one of these.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDateTime;
use tracing::instrument::WithSubscriber;

use crate::availability;
use crate::cache::{Answer, Query};
use crate::config::Config;
use crate::cron::cleanup::CleanupReport;
use crate::cron::{self, Progress, RenewOptions, RenewReport};
use crate::db;
use crate::error::Result;
use crate::flags::Subject;
use crate::log;
use crate::metrics::Metrics;
use crate::sync::channels::Subscribed;
use crate::sync::{Engine, SyncReport};
use crate::time::now_db;
use crate::webhook::{self, Request, Response};

/// A connected calsync instance.
pub struct Calsync {
    engine: Arc<Engine>,
    progress: Progress,
    /// Where this instance's logs go; its work runs under it.
    log: tracing::Dispatch,
    /// Differences shadow reads recorded lately (legacy JSON cache vs SQL cache).
    shadow: crate::legacy::ShadowLog,
    /// The users of calendars read lately (for reads that switch between caches).
    calendar_users: availability::CalendarUsers,
}

impl Calsync {
    /// Connects (failing fast with `DB_UNAVAILABLE`) and checks the schema (`SCHEMA_MISMATCH`),
    /// logging to stderr as JSON lines (see [`Calsync::connect_logged`]).
    pub async fn connect(config: Config) -> Result<Self> {
        Self::connect_logged(config, None).await
    }

    /// Connects as [`Calsync::connect`], logging at `config.log_level` and above to `sink`
    /// (`None`: one JSON line each on stderr).
    pub async fn connect_logged(config: Config, sink: Option<Arc<dyn log::Sink>>) -> Result<Self> {
        config.validate()?;
        let threshold = log::parse_threshold(&config.log_level)?;
        let log = log::Logger::new(threshold, sink.unwrap_or_else(|| Arc::new(log::StderrJson))).dispatch();
        let kept = log.clone();
        async move {
            let pools = db::connect(&config).await?;
            if let Err(e) = db::schema::check(&pools.front).await {
                pools.close().await;
                return Err(e);
            }
            Ok(Calsync {
                engine: Arc::new(Engine::new(pools, config)?),
                progress: Progress::default(),
                log: kept,
                shadow: Default::default(),
                calendar_users: Default::default(),
            })
        }
        .with_subscriber(log)
        .await
    }

    /// Runs `work` under this instance's logger (and so the background tasks it spawns).
    fn logged<F: std::future::Future>(&self, work: F) -> tracing::instrument::WithDispatch<F> {
        work.with_subscriber(self.log.clone())
    }

    /// The configuration this instance runs with.
    pub fn config(&self) -> &Config {
        &self.engine.cfg
    }

    /// Busy blocks from the cache, plus the calendars it cannot answer for and why.
    pub async fn availability(&self, query: &Query) -> Result<Answer> {
        self.logged(async move {
            let e = &self.engine;
            let opts = availability::ReadOptions {
                stale_after: e.cfg.stale_after,
                pending_grace: e.cfg.pending_grace,
                pooled: &e.pooled,
                legacy: e.cfg.legacy_reads,
                users: &self.calendar_users,
            };
            let m = &e.metrics;
            let read = availability::read(&e.front, &e.flags, query, &opts);
            let answer = match db::within(e.cfg.read_timeout, "read (readTimeoutMs)", read).await {
                Ok(a) => a,
                Err(err) => {
                    Metrics::inc(&m.reads, &[err.code()]);
                    return Err(err);
                }
            };
            m.count_read(&read_counts(&answer));
            if e.cfg.sync_on_read && !answer.repairable.is_empty() {
                Engine::sync_on_read(&self.engine, &answer.repairable);
            }
            if let Some(report) = answer.shadow.as_ref().filter(|r| !r.divergences.is_empty()) {
                let fresh = self.shadow.fresh(&report.divergences);
                if !fresh.is_empty() {
                    let engine = self.engine.clone();
                    e.in_background(async move {
                        if let Err(err) = crate::legacy::record(&engine.pool, &fresh, now_db()).await {
                            tracing::debug!(code = err.code(), "shadow differences not recorded");
                        }
                    });
                }
            }
            Ok(answer)
        })
        .await
    }

    /// Evaluates a feature flag for a user or a team (SPEC §3), through the in-process cache.
    pub async fn is_feature_enabled(&self, slug: &str, who: Subject) -> Result<bool> {
        self.logged(async move { self.engine.flags.is_enabled(&self.engine.front, slug, who).await })
            .await
    }

    /// Handles a Google push notification; never fails (bad input becomes a 4xx response). The
    /// sync runs in the background unless `wait`.
    pub async fn handle_google_webhook(&self, req: &Request, wait: bool) -> Response {
        self.logged(async move {
            let res = webhook::google::handle(&self.engine, req, wait).await;
            Metrics::inc(&self.engine.metrics.webhooks, &["google", &res.status.to_string()]);
            res
        })
        .await
    }

    /// Handles a Microsoft Graph request (validation handshake, change or lifecycle notifications);
    /// never fails. Syncs run in the background unless `wait`.
    pub async fn handle_microsoft_webhook(&self, req: &Request, wait: bool) -> Response {
        self.logged(async move {
            let res = webhook::microsoft::handle(&self.engine, req, wait).await;
            Metrics::inc(&self.engine.metrics.webhooks, &["microsoft", &res.status.to_string()]);
            res
        })
        .await
    }

    /// Waits up to `limit` for every background sync started so far; returns how many still run.
    pub async fn settle(&self, limit: std::time::Duration) -> usize {
        self.logged(async move { self.engine.settle(limit).await }).await
    }

    /// Watches the calendar of `SelectedCalendar` row `id` and syncs it.
    pub async fn subscribe(&self, id: &str) -> Result<Subscribed> {
        self.logged(async move { self.engine.subscribe(id).await }).await
    }

    /// Stops watching the calendar of row `id` and forgets its cached events.
    pub async fn unsubscribe(&self, id: &str) -> Result<u64> {
        self.logged(async move { self.engine.unsubscribe(id).await }).await
    }

    /// Syncs the calendar of row `id` now; `full` forces a full sync.
    pub async fn sync_calendar(&self, id: &str, full: bool) -> Result<SyncReport> {
        self.logged(async move { self.engine.sync(id, full).await }).await
    }

    /// One renewal run (subscribe, renew, share, stop) plus the safety-net resync.
    pub async fn renew_watches(&self, opts: &RenewOptions) -> Result<RenewReport> {
        self.logged(async move {
            let r = self.engine.renew(opts, &self.progress).await?;
            self.engine.metrics.count_renewal(&r.counts());
            Ok(r)
        })
        .await
    }

    /// Every metric in the Prometheus text exposition format (SPEC §13); the gauges are read now.
    pub async fn metrics(&self) -> Result<String> {
        self.logged(async move {
            let e = &self.engine;
            let m = &e.metrics;
            let row = crate::db::sql::stmt(
                r#"SELECT (SELECT count(*) FROM "CalendarSyncPending") AS pending,
                          (SELECT count(*) FROM "CalendarSyncPending"
                            WHERE "since" < (clock_timestamp() AT TIME ZONE 'UTC') - $2 * interval '1 millisecond') AS overdue,
                          count(*) FILTER (WHERE "takenUntil" IS NULL OR "takenUntil" <= $1) AS ready,
                          count(*) FILTER (WHERE "takenUntil" > $1) AS held
                   FROM "CalendarSyncBookingChange""#,
            )
            .ts(now_db())
            .bigint(e.cfg.pending_grace.as_millis() as i64)
            .fetch_optional(&e.front)
            .await?;
            let get =
                |c: &str| -> Result<i64> { Ok(row.as_ref().map(|r| sqlx::Row::try_get(r, c)).transpose()?.unwrap_or(0)) };
            m.pending.with_label_values(&[] as &[&str]).set(get("pending")?);
            m.overdue.with_label_values(&[] as &[&str]).set(get("overdue")?);
            m.outbox.with_label_values(&["ready"]).set(get("ready")?);
            m.outbox.with_label_values(&["held"]).set(get("held")?);
            for (name, pool) in [("front", &e.front), ("background", &e.pool)] {
                let (size, idle) = (pool.size() as i64, pool.num_idle() as i64);
                m.connections.with_label_values(&[name, "in_use"]).set(size - idle);
                m.connections.with_label_values(&[name, "idle"]).set(idle);
            }
            Ok(m.render())
        })
        .await
    }

    /// Deletes what the cache no longer needs, in batches.
    pub async fn cleanup(&self, cutoff: NaiveDateTime, batch_size: i64) -> Result<CleanupReport> {
        self.logged(async move {
            // Events that have not ended yet stay, whatever `cutoff` says: the cache keeps vouching for now on.
            let now = now_db();
            cron::cleanup::run(&self.engine.pool, cutoff.min(now), now, batch_size).await
        })
        .await
    }

    /// Compares the live legacy `"CalendarCache"` rows in `scope` with the SQL cache.
    pub async fn verify_legacy(&self, scope: crate::legacy::Scope) -> Result<Vec<crate::legacy::Verdict>> {
        self.logged(async move {
            let cfg = &self.engine.cfg;
            crate::legacy::verify(
                &self.engine.pool,
                scope,
                crate::time::now_db(),
                cfg.stale_after,
                cfg.pending_grace,
            )
            .await
        })
        .await
    }

    /// Users at each migration stage, and the legacy rows.
    pub async fn legacy_stage(&self) -> Result<crate::legacy::Stage> {
        self.logged(
            async move { crate::legacy::stage(&self.engine.pool, &self.engine.flags, crate::time::now_db()).await },
        )
        .await
    }

    /// Deletes every legacy row once every user who has any reads from the SQL cache.
    pub async fn drop_legacy(&self, batch: i64) -> Result<u64> {
        self.logged(async move { crate::legacy::drop_all(&self.engine.pool, &self.engine.flags, batch).await })
            .await
    }

    /// Hands out up to `limit` waiting booking changes (two-way sync), held for `hold`.
    pub async fn take_booking_changes(&self, limit: i64, hold: Duration) -> Result<Vec<crate::db::outbox::Queued>> {
        self.logged(async move { crate::db::outbox::take(&self.engine.front, limit, hold, now_db()).await })
            .await
    }

    /// Removes acknowledged booking changes; returns how many.
    pub async fn ack_booking_changes(&self, ids: &[i64]) -> Result<u64> {
        self.logged(async move { crate::db::outbox::ack(&self.engine.front, ids).await })
            .await
    }

    /// Hands booking changes to `listener` as syncs write them (`None` stops).
    pub fn on_booking_changes(&self, listener: Option<crate::sync::BookingListener>) {
        self.engine.set_booking_listener(listener);
    }

    /// Calendars counted by provider and health.
    pub async fn status(&self, margin: Duration) -> Result<Vec<cron::Health>> {
        self.logged(async move { self.engine.status(margin).await }).await
    }

    /// (done, total) of the current or last renewal run.
    pub fn progress(&self) -> (u64, u64) {
        (
            self.progress.done.load(Ordering::Relaxed),
            self.progress.total.load(Ordering::Relaxed),
        )
    }

    /// Closes the pools, waiting for connections in use to be returned.
    pub async fn close(&self) {
        self.logged(async move {
            self.engine.set_booking_listener(None);
            self.engine.front.close().await;
            self.engine.pool.close().await;
        })
        .await
    }
}

/// A read's answer in the plain counts metrics take.
fn read_counts(answer: &Answer) -> crate::metrics::ReadCounts<'_> {
    let legacy = answer.legacy_served.as_ref().map_or(0, Vec::len) as u64;
    crate::metrics::ReadCounts {
        sql: answer.served.len() as u64 - legacy,
        legacy,
        uncached: answer.uncached.iter().map(|(_, reason)| reason.as_str()).collect(),
        shadow: answer.shadow.as_ref().map(|r| crate::metrics::ShadowCounts {
            compared: r.compared.into(),
            diverged: r.diverged.into(),
            not_comparable: r.not_comparable.into(),
            kinds: r.divergences.iter().map(|(_, d)| d.kind).collect(),
        }),
    }
}
