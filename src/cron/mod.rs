//! The cron work (SPEC §7): `renew` keeps exactly the calendars that should be watched watched
//! (subscribe, renew, share, stop), with a safety-net resync; `cleanup` deletes what the cache no
//! longer needs, in batches.
//!
//! Several processes may run `renew` at once. Each claims a batch of calendars (`renew:<owner>`
//! claims in `"CalendarSyncLease"`, taken in one statement; the claims of other processes are
//! skipped, like `FOR UPDATE SKIP LOCKED`), re-reads the claimed calendars, acts, and ends the
//! claims. No transaction or lock spans the provider calls (SPEC §6.8); a process that dies
//! mid-batch leaves claims that expire. Provider calls run with bounded concurrency per provider.

pub mod cleanup;
pub mod plan;
pub mod poll;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use sqlx::{PgPool, Row as _};

use crate::cache::retry_after;
use crate::db::calendars;
use crate::db::lease;
use crate::db::sql::stmt;
use crate::error::Result;
use crate::flags::SUBSCRIPTION_CACHE;
use crate::sync::Engine;
use crate::time::now_db;
use plan::{group, plan, Calendar, Plan, Policy, Row};

const CANDIDATES_SQL: &str = include_str!("candidates.sql");

/// Options of one renewal run.
#[derive(Debug, Clone)]
pub struct RenewOptions {
    pub policy: Policy,
    /// Concurrent provider calls per provider.
    pub concurrency: usize,
    /// Calendars claimed per batch.
    pub batch_size: usize,
    /// Resync watched calendars whose last successful sync is older than this (`None`: skip).
    pub resync_after: Option<Duration>,
    /// Stop starting new work once the run has lasted this long (a serverless route's time limit,
    /// less what the route needs to answer); the next run continues where this one stopped.
    pub budget: Option<Duration>,
}

impl Default for RenewOptions {
    fn default() -> Self {
        RenewOptions {
            policy: Policy::default(),
            concurrency: 8,
            batch_size: 500,
            resync_after: Some(Duration::from_secs(6 * 3600)),
            budget: None,
        }
    }
}

/// What a renewal run did, by calendar.
#[derive(Debug, Clone, Default)]
pub struct RenewReport {
    /// Calendars looked at.
    pub checked: u64,
    /// Newly subscribed (and synced).
    pub created: u64,
    /// Channels renewed before they expired (or after they had).
    pub renewed: u64,
    /// Rows given the channel their calendar already had.
    pub shared: u64,
    /// Channels stopped because the calendar should no longer be watched.
    pub stopped: u64,
    /// Calendars whose action failed.
    pub failed: u64,
    /// Calendars another process had claimed.
    pub skipped: u64,
    /// Calendars pausing after repeated subscribe failures.
    pub paused: u64,
    /// Calendars resynced by the safety net.
    pub resynced: u64,
    /// Leaked channels stopped (see [`Engine::stop_orphans`]).
    pub orphans_stopped: u64,
    /// Highest number of concurrent provider operations seen, per provider (by label).
    pub peaks: Vec<(&'static str, u64)>,
    /// Calendars left for the next run because the time budget ran out.
    pub deferred: u64,
    /// Batches that failed as a whole (a database error); the run went on with the next.
    pub batch_errors: u64,
    /// Whether the run looked at everything it had to (false: the budget ran out).
    pub complete: bool,
}

impl RenewReport {
    /// The highest concurrency seen for the provider labelled `label` (0 when none ran).
    pub fn peak(&self, label: &str) -> u64 {
        self.peaks.iter().find(|(l, _)| *l == label).map_or(0, |(_, n)| *n)
    }

    /// What the pass did to calendars, in the order of `metrics::RENEWAL_ACTIONS` (`subscribed`,
    /// `renewed`, `shared`, `stopped`, `failed`, `paused`, `resynced`, `orphan_stopped`, `deferred`).
    pub fn counts(&self) -> [u64; crate::metrics::RENEWAL_ACTIONS.len()] {
        [
            self.created,
            self.renewed,
            self.shared,
            self.stopped,
            self.failed,
            self.paused,
            self.resynced,
            self.orphans_stopped,
            self.deferred,
        ]
    }
}

/// One line of `status()`: how many calendars of a provider are in one health (and, for failing
/// ones, failed for one reason).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub integration: String,
    pub health: &'static str,
    /// The error code of the last sync failure (`failing` only; `None` when a subscribe failed or
    /// the credential is invalid).
    pub reason: Option<String>,
    pub calendars: u64,
}

/// Live progress of the current long run, for CLIs.
#[derive(Default)]
pub struct Progress {
    pub done: AtomicU64,
    pub total: AtomicU64,
}

#[derive(Default)]
struct Tally {
    created: AtomicU64,
    renewed: AtomicU64,
    shared: AtomicU64,
    stopped: AtomicU64,
    failed: AtomicU64,
    skipped: AtomicU64,
    paused: AtomicU64,
    resynced: AtomicU64,
    deferred: AtomicU64,
    batch_errors: AtomicU64,
    /// Provider operations running now and the most seen at once, per provider (registry order).
    inflight: Vec<AtomicUsize>,
    peak: Vec<AtomicUsize>,
    /// Calendars synced by this run already (after a lapsed channel, a re-driven mark): the safety
    /// net, which decides from the run's first snapshot, leaves them alone.
    synced: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl Tally {
    fn new(providers: usize) -> Self {
        Tally {
            inflight: (0..providers).map(|_| AtomicUsize::new(0)).collect(),
            peak: (0..providers).map(|_| AtomicUsize::new(0)).collect(),
            ..Default::default()
        }
    }

    fn count(&self, c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    fn synced(&self, id: &str) {
        self.synced
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string());
    }

    fn was_synced(&self, id: &str) -> bool {
        self.synced.lock().unwrap_or_else(|p| p.into_inner()).contains(id)
    }
}

/// Loads candidate rows: all of them, or the groups of `ids`.
/// `integrations`: the providers' (rows of any other are left alone).
pub async fn candidates(pool: &PgPool, integrations: &[&str], ids: Option<&[String]>) -> Result<Vec<Calendar>> {
    let rows = stmt(CANDIDATES_SQL)
        .texts(integrations)
        .texts_or_null(ids)
        .fetch_all(pool)
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(Row {
            id: r.try_get("id")?,
            user_id: r.try_get("userId")?,
            integration: r.try_get("integration")?,
            external_id: r.try_get("externalId")?,
            credential_id: r.try_get("credentialId")?,
            channel_id: r.try_get("channelId")?,
            channel_expiration: r.try_get("channelExpiration")?,
            sub_errors: r.try_get("sub_errors")?,
            sub_error_at: r.try_get("sub_error_at")?,
            synced_at: r.try_get("syncedAt")?,
            sync_error_at: r.try_get("syncErrorAt")?,
            subscribed_at: r.try_get("syncSubscribedAt")?,
            credential_ok: r.try_get("credential_ok")?,
            sync_errors: r.try_get("sync_errors")?,
            window_end: r.try_get("window_end")?,
        });
    }
    Ok(group(out))
}

impl Engine {
    /// The integrations of the registered providers that push (polled ones are `poll`'s).
    fn integrations(&self) -> Vec<&'static str> {
        self.providers()
            .map(|p| p.integration())
            .filter(|i| !crate::providers::polled(i))
            .collect()
    }

    /// Whether `cal` should be watched: its user's `calendar-subscription-cache` flag is on and its
    /// provider can watch it.
    fn wanted(&self, cal: &Calendar, flags: &HashMap<i32, bool>) -> bool {
        let o = cal.owner();
        flags.get(&o.user_id).copied().unwrap_or(false)
            && self.provider(&o.integration).is_ok_and(|p| p.watchable(&o.external_id))
    }

    /// The cache flag for every user of `cals`, in one query (through the flag cache).
    async fn cache_flags(&self, cals: &[Calendar]) -> Result<HashMap<i32, bool>> {
        let mut users: Vec<i32> = cals.iter().map(|c| c.owner().user_id).collect();
        users.sort_unstable();
        users.dedup();
        self.flags.for_users(&self.pool, SUBSCRIPTION_CACHE, &users).await
    }

    /// One renewal run (SPEC §7) followed by the safety net. An error in one batch is counted and
    /// the run goes on; with a budget, no new work starts once it is spent.
    pub async fn renew(&self, opts: &RenewOptions, progress: &Progress) -> Result<RenewReport> {
        let deadline = opts.budget.map(|b| Instant::now() + b);
        let all = candidates(&self.pool, &self.integrations(), None).await?;
        let flags = self.cache_flags(&all).await?;
        let now = now_db();
        let tally = Tally::new(self.providers().count());
        let mut work: Vec<&Calendar> = Vec::new();
        for cal in &all {
            match plan(cal, self.wanted(cal, &flags), now, &opts.policy) {
                Plan::Healthy | Plan::Idle => {}
                Plan::Paused => tally.count(&tally.paused),
                _ => work.push(cal),
            }
        }
        progress.total.store(work.len() as u64, Ordering::Relaxed);
        progress.done.store(0, Ordering::Relaxed);
        for batch in work.chunks(opts.batch_size.max(1)) {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                tally.deferred.fetch_add(batch.len() as u64, Ordering::Relaxed);
                continue;
            }
            if let Err(e) = self.renew_batch(batch, &flags, opts, &tally, progress, deadline).await {
                tally.count(&tally.batch_errors);
                tracing::warn!(code = e.code(), error = %e, "a renewal batch failed; going on with the next");
            }
        }
        let orphans_stopped = match self.stop_orphans().await {
            Ok(n) => n,
            Err(e) => {
                tally.count(&tally.batch_errors);
                tracing::warn!(code = e.code(), error = %e, "stopping leaked channels failed");
                0
            }
        };
        if let Err(e) = self.redrive_pending(opts, &tally, deadline).await {
            tally.count(&tally.batch_errors);
            tracing::warn!(code = e.code(), error = %e, "re-driving announced changes failed");
        }
        if let Some(after) = opts.resync_after {
            // From the run's one snapshot of the calendars and flags (each is loaded once a run).
            self.safety_net(&all, &flags, after, opts, &tally, deadline).await;
        }
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Ok(RenewReport {
            checked: all.len() as u64,
            created: get(&tally.created),
            renewed: get(&tally.renewed),
            shared: get(&tally.shared),
            stopped: get(&tally.stopped),
            failed: get(&tally.failed),
            skipped: get(&tally.skipped),
            paused: get(&tally.paused),
            resynced: get(&tally.resynced),
            orphans_stopped,
            peaks: self
                .providers()
                .zip(&tally.peak)
                .map(|(p, peak)| (p.label(), peak.load(Ordering::Relaxed) as u64))
                .collect(),
            deferred: get(&tally.deferred),
            batch_errors: get(&tally.batch_errors),
            complete: get(&tally.deferred) == 0,
        })
    }

    async fn renew_batch(
        &self,
        batch: &[&Calendar],
        flags: &HashMap<i32, bool>,
        opts: &RenewOptions,
        tally: &Tally,
        progress: &Progress,
        deadline: Option<Instant>,
    ) -> Result<()> {
        // Claim every owner of the batch that no other process has claimed, in one statement.
        let keys: Vec<String> = batch.iter().map(|c| format!("renew:{}", c.owner().id)).collect();
        // Long enough for a batch's provider calls; a process that died holding the claims delays
        // these calendars' renewal by at most this (channels are renewed a day before they
        // expire), and should a batch outlast it, each channel change still has its own claim.
        let claims = lease::try_take_many(&self.pool, &keys, self.cfg.sync.lease * 10).await?;
        let claimed: Vec<String> = claims
            .iter()
            .filter_map(|l| l.key.strip_prefix("renew:").map(str::to_string))
            .collect();
        let skipped = keys.len() - claimed.len();
        for _ in 0..skipped {
            tally.count(&tally.skipped);
        }
        progress.done.fetch_add(skipped as u64, Ordering::Relaxed);
        // Re-read under the claim: another process may have finished these calendars just before.
        let fresh = if claimed.is_empty() {
            Vec::new()
        } else {
            match candidates(&self.pool, &self.integrations(), Some(&claimed)).await {
                Ok(fresh) => fresh,
                Err(e) => {
                    lease::release_all(&self.pool, claims).await;
                    return Err(e);
                }
            }
        };
        let now = now_db();
        let mut jobs: Vec<Vec<(Plan, Calendar)>> = self.providers().map(|_| Vec::new()).collect();
        for cal in fresh {
            if !claimed.contains(&cal.owner().id) {
                continue; // a row of the group that only now became its owner: leave it to the next run
            }
            let p = plan(&cal, self.wanted(&cal, flags), now, &opts.policy);
            let slot = self
                .providers()
                .position(|pr| pr.integration() == cal.owner().integration)
                .unwrap_or(0);
            match p {
                Plan::Healthy | Plan::Idle => {
                    progress.done.fetch_add(1, Ordering::Relaxed);
                }
                Plan::Paused => {
                    tally.count(&tally.paused);
                    progress.done.fetch_add(1, Ordering::Relaxed);
                }
                _ => jobs[slot].push((p, cal)),
            }
        }
        let run = |slot: usize, list: Vec<(Plan, Calendar)>| {
            stream::iter(list)
                .map(move |(p, cal)| async move {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        tally.count(&tally.deferred); // the claim ends with the batch; the next run does it
                        progress.done.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    let now_running = tally.inflight[slot].fetch_add(1, Ordering::SeqCst) + 1;
                    tally.peak[slot].fetch_max(now_running, Ordering::SeqCst);
                    self.act(p, &cal, tally).await;
                    tally.inflight[slot].fetch_sub(1, Ordering::SeqCst);
                    progress.done.fetch_add(1, Ordering::Relaxed);
                })
                .buffer_unordered(opts.concurrency.max(1))
                .collect::<Vec<()>>()
        };
        futures_util::future::join_all(jobs.into_iter().enumerate().map(|(slot, list)| run(slot, list))).await;
        lease::release_all(&self.pool, claims).await;
        Ok(())
    }

    async fn act(&self, p: Plan, cal: &Calendar, tally: &Tally) {
        let id = &cal.owner().id;
        let outcome = match p {
            Plan::Subscribe => self.subscribe(id).await.map(|_| {
                tally.synced(id);
                &tally.created
            }),
            Plan::Renew => {
                match self.renew_channel(id).await {
                    // A channel opened after the old one had lapsed: sync what nobody announced.
                    Ok(s) if s.lapsed => self.sync_notified(id).await.map(|_| {
                        tally.synced(id);
                        &tally.renewed
                    }),
                    other => other.map(|_| &tally.renewed),
                }
            }
            Plan::Share => self.share_channel(cal).await.map(|_| &tally.shared),
            Plan::Stop => self.unsubscribe(id).await.map(|_| &tally.stopped),
            Plan::Paused | Plan::Healthy | Plan::Idle => return,
        };
        match outcome {
            Ok(counter) => tally.count(counter),
            Err(e) => {
                tally.count(&tally.failed);
                tracing::warn!(calendar = %id, action = ?p, code = e.code(), error = %e, "renewal action failed");
            }
        }
    }

    /// Calendars counted by provider, health (`healthy`, `expiring`, `failing`, `stale`,
    /// `unsubscribed`) and, for failing ones, the code of their last sync failure; sorted.
    pub async fn status(&self, margin: Duration) -> Result<Vec<Health>> {
        let now = now_db();
        // A scan of every calendar: on the background pool, never competing with reads.
        let why: HashMap<String, String> = stmt(r#"SELECT "selectedCalendarId", "code" FROM "CalendarSyncFailure""#)
            .fetch_as::<(String, String)>(&self.pool)
            .await?
            .into_iter()
            .collect();
        let mut counts: HashMap<(String, &'static str, Option<String>), u64> = HashMap::new();
        let all: Vec<&'static str> = self.providers().map(|p| p.integration()).collect();
        for cal in candidates(&self.pool, &all, None).await? {
            let h = match crate::providers::polled(&cal.owner().integration) {
                true => plan::polled_health(&cal, now, self.cfg.poll_stale_after),
                false => plan::health(&cal, now, margin, self.cfg.stale_after),
            };
            let reason = (h == "failing").then(|| why.get(&cal.owner().id).cloned()).flatten();
            *counts.entry((cal.owner().integration.clone(), h, reason)).or_default() += 1;
        }
        let mut out: Vec<Health> = counts
            .into_iter()
            .map(|((integration, health, reason), calendars)| Health {
                integration,
                health,
                reason,
                calendars,
            })
            .collect();
        out.sort_by(|a, b| (&a.integration, a.health, &a.reason).cmp(&(&b.integration, b.health, &b.reason)));
        Ok(out)
    }

    async fn share_channel(&self, cal: &Calendar) -> Result<()> {
        let Some(ch) = cal.channel() else { return Ok(()) };
        let ids: Vec<String> = cal.rows.iter().map(|r| r.id.clone()).collect();
        calendars::copy_channel(&self.pool, &ch.id, &ids).await
    }

    /// Syncs the calendars whose announced change has waited more than a few seconds, or more than
    /// the grace period if that is shorter (the process that acknowledged it may have died before
    /// its sync finished; reads already call such a calendar stale).
    async fn redrive_pending(&self, opts: &RenewOptions, tally: &Tally, deadline: Option<Instant>) -> Result<()> {
        let after = self.cfg.pending_grace.min(Duration::from_secs(5));
        let ids = calendars::pending(&self.pool, after.as_millis() as i64).await?;
        self.resync(ids, opts, tally, deadline, "re-driving an announced change failed")
            .await;
        Ok(())
    }

    /// Syncs `ids` with bounded concurrency, counting each as resynced or failed; none starts after
    /// `deadline` (those count as deferred).
    async fn resync(
        &self,
        ids: Vec<String>,
        opts: &RenewOptions,
        tally: &Tally,
        deadline: Option<Instant>,
        what: &str,
    ) {
        stream::iter(ids)
            .map(|id| async move {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    tally.count(&tally.deferred);
                    return;
                }
                match self.sync_notified(&id).await {
                    Ok(_) => {
                        tally.synced(&id);
                        tally.count(&tally.resynced)
                    }
                    Err(e) => {
                        tally.count(&tally.failed);
                        // The sync's failure itself was logged where it was recorded.
                        tracing::debug!(calendar = %id, code = e.code(), "{what}");
                    }
                }
            })
            .buffer_unordered(opts.concurrency.max(1))
            .collect::<Vec<()>>()
            .await;
    }

    /// Resyncs watched calendars whose last successful sync is older than `after`, however healthy
    /// their channel looks: notifications are not 100% reliable.
    async fn safety_net(
        &self,
        all: &[Calendar],
        flags: &HashMap<i32, bool>,
        after: Duration,
        opts: &RenewOptions,
        tally: &Tally,
        deadline: Option<Instant>,
    ) {
        let now = now_db();
        let cutoff = now - chrono::Duration::from_std(after).unwrap_or_default();
        // Calendars not synced for a while, those whose window runs short (a full resync then
        // slides it forward), and failing ones whose backoff is over — but never a failing one
        // before its backoff is over, so the safety net does not spin on a broken calendar.
        let due: Vec<String> = all
            .iter()
            .filter(|c| plan::should_watch(c, self.wanted(c, flags)))
            .filter(|c| {
                let o = c.owner();
                let failing = o.sync_error_at.filter(|e| o.synced_at.is_none_or(|s| *e >= s));
                match failing {
                    Some(at) => now >= at + chrono::Duration::from_std(retry_after(o.sync_errors)).unwrap_or_default(),
                    None => o.synced_at.is_none_or(|t| t <= cutoff) || self.window_due(&o.id, o.window_end, now),
                }
            })
            .filter(|c| c.channel().is_some() && !tally.was_synced(&c.owner().id))
            .map(|c| c.owner().id.clone())
            .collect();
        self.resync(due, opts, tally, deadline, "safety-net resync failed")
            .await;
    }
}

/// Milliseconds since `t`, for reports.
pub fn elapsed_ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The defaults the declarations (and so docs/cron.md's readers) are told are the ones used.
    #[test]
    fn documented_renewal_defaults_are_the_real_ones() {
        let d = RenewOptions::default();
        let types = include_str!("../napi/reports.rs");
        let doc = include_str!("../../docs/cron.md");
        let said = format!(
            "Concurrent provider operations per provider. Default {}.",
            d.concurrency
        );
        assert!(types.contains(&said), "src/napi/reports.rs should say: {said}");
        let said = format!("(`concurrency`, default {})", d.concurrency);
        assert!(doc.contains(&said), "docs/cron.md should say: {said}");
        let said = format!("Calendars claimed per batch. Default {}.", d.batch_size);
        assert!(types.contains(&said), "src/napi/reports.rs should say: {said}");
    }
}
