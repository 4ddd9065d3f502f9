//! `Calsync`: the connected library, free of napi types so `cargo test` and other Rust callers can
//! use it directly. The JS class in `napi/` wraps one of these.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDateTime;
use tracing::instrument::WithSubscriber;

use crate::availability;
use crate::cache::{Answer, Query, Staleness};
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
                bounds: Staleness::of(&e.cfg),
                legacy: e.cfg.legacy_reads,
                users: &self.calendar_users,
                max_replica_lag: e.cfg.max_replica_lag,
                replica_budget: e.cfg.read_timeout / 2,
            };
            let m = &e.metrics;
            let primary = availability::Target {
                pool: &e.front,
                pooled: &e.pooled,
            };
            let read = availability::serve(primary, &e.replicas, &e.commits, &e.flags, query, &opts);
            let outcome = db::within(e.cfg.read_timeout, "read (readTimeoutMs)", read).await;
            let (mut answer, served) = match outcome {
                Ok(a) => a,
                Err(err) => {
                    Metrics::inc(&m.reads, &[err.code()]);
                    return Err(err);
                }
            };
            self.after_replicas(&served);
            answer.by_replica = served.by_replica;
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

    /// Counts what replicas did for a read, and probes those due for one in the background.
    fn after_replicas(&self, served: &availability::Served) {
        let m = &self.engine.metrics;
        let by = if served.by_replica { "replica" } else { "primary" };
        Metrics::inc(&m.reads_served, &[by]);
        if let (Some(label), Some(lag)) = (&served.asked, served.lag_ms) {
            m.replica_lag.with_label_values(&[label]).set(lag as f64 / 1000.0);
        }
        for (label, why) in &served.fallbacks {
            Metrics::inc(&m.replica_fallbacks, &[label, why.as_str()]);
        }
        for &i in &served.probes {
            let engine = self.engine.clone();
            self.engine.in_background(async move {
                let r = &engine.replicas.list[i];
                let probe = r.probe(engine.cfg.max_replica_lag);
                // Behind a pooler, a statement to a server that is down waits in the pooler's queue.
                let (outcome, lag) = tokio::time::timeout(engine.cfg.read_timeout / 2, probe)
                    .await
                    .unwrap_or((Err(db::replicas::Fallback::Down), None));
                if let Some(lag) = lag {
                    engine
                        .metrics
                        .replica_lag
                        .with_label_values(&[&r.label])
                        .set(lag as f64 / 1000.0);
                }
                r.record(outcome.map(|_| ()), std::time::Instant::now());
            });
        }
    }

    /// Evaluates a feature flag for a user or a team (SPEC §3), through the in-process cache: on a
    /// replica that a read or probe found within `maxReplicaLagMs` during the last
    /// `maxReplicaLagMs` (a flag's statement does not measure lag itself, and an answer is cached
    /// for `flagCacheTtlMs` anyway), else on the primary.
    pub async fn is_feature_enabled(&self, slug: &str, who: Subject) -> Result<bool> {
        self.logged(async move {
            let e = &self.engine;
            let now = std::time::Instant::now();
            let (usable, _) = e.replicas.order(now, false);
            let fresh = usable.into_iter().find(|r| r.recently_ok(now, e.cfg.max_replica_lag));
            if let Some(r) = fresh {
                let on_replica = e.flags.is_enabled(&r.pool, slug, who);
                match db::within(e.cfg.read_timeout / 2, "replica flag read", on_replica).await {
                    Ok(on) => return Ok(on),
                    Err(_) => {
                        r.record(Err(db::replicas::Fallback::Down), std::time::Instant::now());
                        Metrics::inc(&e.metrics.replica_fallbacks, &[&r.label, "down"]);
                    }
                }
            }
            e.flags.is_enabled(&e.front, slug, who).await
        })
        .await
    }

    /// Handles a webhook request to the route of `integration` (a Google push notification, a
    /// Microsoft Graph handshake or batch); never fails (bad input becomes a 4xx response). The
    /// syncs run in the background unless `wait`.
    pub async fn handle_webhook(&self, integration: &str, req: &Request, wait: bool) -> Response {
        self.logged(async move {
            let res = webhook::handle(&self.engine, integration, req, wait).await;
            let label = self.engine.label(integration);
            Metrics::inc(&self.engine.metrics.webhooks, &[label, &res.status.to_string()]);
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
            self.engine.metrics.count_renewal(r.counts());
            Ok(r)
        })
        .await
    }

    /// One poll run over the calendars whose provider has no push (CalDAV, iCloud).
    pub async fn poll_calendars(&self, opts: &crate::cron::poll::PollOptions) -> Result<crate::cron::poll::PollReport> {
        self.logged(async move { self.engine.poll(opts).await }).await
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
            crate::legacy::verify(&self.engine.pool, scope, crate::time::now_db(), &Staleness::of(cfg)).await
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
            self.engine.replicas.close().await;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Selection;
    use crate::model::CacheEvent;
    use crate::providers::memory;

    /// A test database on the server `CALSYNC_TEST_DATABASE_URL` names (`.ci/run` sets it), with
    /// Cal.com's tables and calsync's; `None` without one.
    async fn test_database() -> Option<(sqlx::PgPool, String, String)> {
        let Ok(server) = std::env::var("CALSYNC_TEST_DATABASE_URL") else {
            eprintln!("skipped: set CALSYNC_TEST_DATABASE_URL to a Postgres server to run it");
            return None;
        };
        let admin = sqlx::PgPool::connect(&server)
            .await
            .expect("CALSYNC_TEST_DATABASE_URL answers");
        let name = format!("calsync_rust_{}", uuid::Uuid::new_v4().simple());
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&admin)
            .await
            .unwrap();
        let mut url = reqwest::Url::parse(&server).unwrap();
        url.set_path(&name);
        let pool = sqlx::PgPool::connect(url.as_str()).await.unwrap();
        db::schema::apply(&pool, true).await.unwrap();
        Some((admin, name, url.to_string()))
    }

    fn event(id: &str, hour: u32) -> CacheEvent {
        let day = (crate::time::now_db() + chrono::Duration::days(2)).date();
        let at = |h: u32| day.and_hms_opt(h, 0, 0).unwrap();
        CacheEvent {
            external_id: id.into(),
            etag: format!("{id}-{hour}"),
            ical_uid: None,
            ical_sequence: 0,
            summary: None,
            description: None,
            location: None,
            start: at(hour),
            end: at(hour + 1),
            is_all_day: false,
            time_zone: None,
            status: "confirmed",
            recurring_event_id: None,
            original_start: None,
            external_created: None,
            external_updated: None,
            organizer: true,
        }
    }

    /// The hours the cache says the calendar is busy the day after tomorrow (it must be served).
    async fn busy(calsync: &Calsync, id: &str) -> Vec<String> {
        let day = (crate::time::now_db() + chrono::Duration::days(2)).date();
        let q = Query::new(
            Selection::Ids(vec![id.to_string()]),
            day.and_hms_opt(0, 0, 0).unwrap().and_utc(),
            day.and_hms_opt(23, 0, 0).unwrap().and_utc(),
            10,
        )
        .unwrap();
        let a = calsync.availability(&q).await.unwrap();
        assert_eq!(a.served, vec![id.to_string()], "served: {:?}", a.uncached);
        a.busy.iter().map(|b| b.start[11..13].to_string()).collect()
    }

    /// A provider added as a module and one line of the registry (the test-only memory provider)
    /// is synced by the real engine: subscribe, full sync in pages, incremental syncs from its
    /// cursor, an expired cursor answered with a full sync, and reads served from the cache.
    #[tokio::test]
    async fn a_registered_provider_syncs_through_the_engine() {
        let Some((admin, name, url)) = test_database().await else {
            return;
        };
        let mut cfg = Config::from_lookup(|_| None);
        cfg.database_url = crate::config::Secret::new(url.clone());
        cfg.flag_cache_ttl = Duration::ZERO;
        cfg.log_level = "off".into();
        let calsync = Calsync::connect(cfg).await.unwrap();
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        let calendar = format!("mem-{}", uuid::Uuid::new_v4());
        let expiry = crate::time::now_utc().timestamp_millis() + 3_600_000;
        let id: Option<String> = db::sql::stmt(
            r#"WITH u AS (INSERT INTO users ("uuid", email) VALUES (gen_random_uuid(), 'mem@example.com') RETURNING id),
                    f AS (INSERT INTO "Feature" (slug, enabled, type, "updatedAt") VALUES ('calendar-subscription-cache', true, 'OPERATIONAL', now())
                          ON CONFLICT (slug) DO UPDATE SET enabled = true),
                    uf AS (INSERT INTO "UserFeatures" ("userId", "featureId", enabled, "assignedBy", "updatedAt")
                           SELECT id, 'calendar-subscription-cache', true, 'test', now() FROM u),
                    c AS (INSERT INTO "Credential" (type, key, "userId", invalid)
                          SELECT 'memory_calendar', jsonb_build_object('access_token', 'a', 'expiry_date', $2::bigint), id, false FROM u RETURNING id)
               INSERT INTO "SelectedCalendar" (id, "userId", integration, "externalId", "credentialId")
               SELECT gen_random_uuid()::text, u.id, 'memory_calendar', $1, c.id FROM u, c RETURNING id"#,
        )
        .text(calendar.as_str())
        .bigint(expiry)
        .scalar(&pool)
        .await
        .unwrap();
        let id = id.unwrap();
        for (i, hour) in [9, 11, 13, 15, 17].into_iter().enumerate() {
            memory::put(&calendar, event(&format!("e{i}"), hour));
        }
        let sub = calsync.subscribe(&id).await.unwrap();
        let first = sub.sync.unwrap();
        assert!(first.full);
        assert_eq!((first.pages, first.upserted), (3, 5), "five events, two a page");
        assert_eq!(busy(&calsync, &id).await, ["09", "11", "13", "15", "17"]);

        memory::remove(&calendar, "e0");
        memory::put(&calendar, event("e5", 19));
        let next = calsync.sync_calendar(&id, false).await.unwrap();
        assert!(!next.full);
        assert_eq!((next.upserted, next.deleted), (1, 1));
        assert_eq!(busy(&calsync, &id).await, ["11", "13", "15", "17", "19"]);

        memory::expire_cursors(&calendar);
        memory::put(&calendar, event("e1", 7));
        let resync = calsync.sync_calendar(&id, false).await.unwrap();
        assert_eq!(resync.full_reason, Some("token_expired"));
        assert_eq!(busy(&calsync, &id).await, ["07", "13", "15", "17", "19"]);

        calsync.close().await;
        pool.close().await;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE \"{name}\" WITH (FORCE)")))
            .execute(&admin)
            .await
            .unwrap();
    }
}
