//! One sync run under its claim: the listing read page by page into a buffer (staged in the
//! database past `buffer_events`), then assembled into a [`Commit`] (rows, removals, cursor, window,
//! outbox) that the database layer writes in one short transaction, which first checks nothing
//! moved underneath.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use chrono::NaiveDateTime;
use chrono_tz::Tz;

use super::{bookings, not_found, Engine, Restart, SyncReport};
use crate::cache::legacy_write;
use crate::db::calendars::{self, Group};
use crate::db::commit::{self, Commit, Outbox, Written};
use crate::db::events;
use crate::db::lease::Lease;
use crate::error::Error;
use crate::flags::{Subject, CACHE_SQL_WRITE, SUBSCRIPTION_SYNC};
use crate::model::{CacheEvent, Change};
use crate::providers::{Next, Provider, ProviderError, Start};
use crate::time::now_db;

impl Engine {
    pub(super) async fn sync_claimed(
        &self,
        group: &Group,
        force_full: Option<&'static str>,
        claim: &Lease,
    ) -> Result<SyncReport, Restart> {
        let full_reason = if force_full.is_some() {
            force_full
        } else if group.sync_token.is_none() && group.sync_error_count > 0 {
            Some("repeated_failures")
        } else if group.sync_token.is_none() || !group.has_state {
            Some("first_sync")
        } else if self.window_due(&group.owner_id, group.window_end, now_db()) {
            Some("window_refresh")
        } else {
            None
        };
        let mut access = self.access_token(group, None).await?;
        let bookings_flag = self
            .flags
            .is_enabled(&self.pool, SUBSCRIPTION_SYNC, Subject::User(group.user_id))
            .await?;
        let provider = self.provider(&group.integration)?;
        let bookings_flag = bookings_flag && provider.reports_bookings();
        let legacy_write = provider.in_legacy_cache()
            && self
                .flags
                .is_enabled(&self.pool, CACHE_SQL_WRITE, Subject::User(group.user_id))
                .await?;
        // A polled calendar without a zone of its own reads floating times and all-day dates in
        // its user's (the provider's first page starts from it).
        let tz = match crate::providers::polled(&group.integration) {
            true => calendars::user_zone(&self.pool, group.user_id).await?,
            false => Tz::UTC,
        };
        let mut run = Run {
            group,
            full: full_reason.is_some(),
            stamp: now_db(),
            report_bookings: bookings_flag,
            bookings: HashMap::new(),
            tz,
            report: SyncReport::default(),
            buffer: Buffer::new(),
            claim,
            claim_renewed: Instant::now(),
            legacy_write,
        };
        let fetched = self.fetch(provider, &mut run, &mut access).await;
        let committed = match fetched {
            Ok(token) if run.report_bookings => match self.check_bookings(&mut run, &access).await {
                Ok(old) => self.commit(&mut run, token.as_deref(), &old).await,
                Err(e) => Err(e),
            },
            Ok(token) => self.commit(&mut run, token.as_deref(), &HashMap::new()).await,
            Err(e) => Err(e),
        };
        if run.buffer.staged > 0 {
            let writing = Instant::now();
            if let Err(e) = events::drop_stage(&self.pool, &run.buffer.run_id).await {
                tracing::debug!(error = %e, "could not drop staged rows; cleanup removes them");
            }
            run.report.db_ms += writing.elapsed().as_secs_f64() * 1000.0;
        }
        committed?;
        let mut report = run.report;
        report.owner_id = group.owner_id.clone();
        report.full = run.full;
        report.full_reason = full_reason;
        Ok(report)
    }

    /// Writes the sync in one short transaction: the engine assembles the [`Commit`], the database
    /// layer writes it (only if the stored token is still the one the sync started from), and the
    /// legacy JSON cache is rebuilt from the written rows in the same transaction.
    /// `old`: the cached rows of the bookings the run concerns (two-way sync).
    async fn commit(
        &self,
        run: &mut Run<'_>,
        token: Option<&str>,
        old: &HashMap<String, crate::db::bookings::Cached>,
    ) -> Result<(), Restart> {
        let group = run.group;
        let writing = Instant::now();
        let found = if run.report_bookings {
            bookings::found(&run.bookings, old, run.full)
        } else {
            Vec::new()
        };
        let rows = run.buffer.take_rows();
        // When the provider says each event changed (a full sync reads every event, changed lately
        // or not: only incremental syncs measure propagation).
        let updated: Vec<NaiveDateTime> = if run.full {
            Vec::new()
        } else {
            rows.iter().filter_map(|e| e.external_updated).collect()
        };
        let commit = Commit {
            owner_id: &group.owner_id,
            row_ids: &group.row_ids,
            started_from: group.sync_token.as_deref(),
            clears_mark: group.pending,
            token,
            full: run.full,
            stamp: run.stamp,
            rows,
            removed: run.buffer.removed.drain().collect(),
            resources: run.buffer.resources.drain().collect(),
            run_id: &run.buffer.run_id,
            staged: run.buffer.staged,
            window: run.full.then(|| self.window(run.stamp)),
            outbox: run.report_bookings.then_some(Outbox {
                user_id: group.user_id,
                integration: &group.integration,
                found: &found,
            }),
            read_at: group.read_at,
            claim: run.claim,
        };
        let mut tx = self.pool.begin().await.map_err(Error::from)?;
        let (upserted, deleted) = match commit::write(&mut tx, commit).await? {
            Written::Gone => return Err(not_found(&group.owner_id).into()),
            Written::Moved => return Err(Restart::Moved),
            Written::Done { upserted, deleted } => (upserted, deleted),
        };
        if let (true, Some(credential)) = (run.legacy_write, group.credential_id) {
            let done = legacy_write::refresh(
                &mut tx,
                credential,
                &group.external_id,
                &group.owner_id,
                run.stamp,
                &crate::cache::Staleness::of(&self.cfg),
            )
            .await?;
            run.report.legacy_written = done.written;
            run.report.legacy_skipped = done.skipped;
        }
        // With replicas: the transaction's id, for this process's reads of the calendar (causal).
        let xid = match self.replicas.list.is_empty() {
            true => None,
            false => Some(crate::db::replicas::transaction_id(&mut tx).await?),
        };
        tx.commit().await.map_err(Error::from)?;
        if let Some(xid) = xid {
            self.note_commit(group, xid);
        }
        let lag = self
            .metrics
            .propagation_seconds
            .with_label_values(&[self.label(&group.integration)]);
        let committed = now_db();
        for at in updated {
            lag.observe((committed - at).num_milliseconds().max(0) as f64 / 1000.0);
        }
        if !found.is_empty() {
            self.deliver_booking_changes();
        }
        run.report.booking_changes = found;
        run.report.upserted = upserted;
        run.report.deleted = deleted;
        run.report.db_ms += writing.elapsed().as_secs_f64() * 1000.0;
        Ok(())
    }

    /// Reads every page of the calendar's listing into the run's buffer: all of the window for a
    /// full sync, else the changes since the stored cursor. Returns the provider's new cursor.
    async fn fetch(
        &self,
        provider: &dyn Provider,
        run: &mut Run<'_>,
        access: &mut String,
    ) -> Result<Option<String>, Restart> {
        let (from, to) = self.window(run.stamp);
        let cursor = run.group.sync_token.clone();
        let start = match (&cursor, run.full) {
            (Some(c), false) => Start::Since(c),
            _ => Start::Full { from, to },
        };
        let target = run.group.target();
        let mut page: Option<String> = None;
        let mut refreshed = false;
        loop {
            let asked = std::time::Instant::now();
            let listed = provider.list(access, &target, start, page.as_deref(), run.tz).await;
            run.report.provider_ms += asked.elapsed().as_secs_f64() * 1000.0;
            let listed = match listed {
                Ok(p) => p,
                // A refused access token that looked fresh (revoked, or expired early on a long
                // sync): refresh once, then ask for the same page again.
                Err(ProviderError::Unauthorized) if !refreshed => {
                    *access = self.access_token(run.group, Some(access.as_str())).await?;
                    refreshed = true;
                    continue;
                }
                Err(ProviderError::SyncTokenInvalid) if !run.full => return Err(Restart::FullSync),
                Err(e) => return Err(Restart::Failed(e.into())),
            };
            run.report.pages += 1;
            if let Some(z) = listed.time_zone {
                run.tz = z;
            }
            self.apply(run, listed.changes).await?;
            match listed.next {
                Next::Page(next) => page = Some(next),
                Next::Done(cursor) => return Ok(cursor),
            }
        }
    }

    /// Takes one page of changes into the run's buffer (the last change of an id winning), staging
    /// the buffer when it grows past `buffer_events`, and keeps the run's claim alive.
    async fn apply(&self, run: &mut Run<'_>, changes: Vec<Change>) -> Result<(), Restart> {
        let mut last: HashMap<&str, usize> = HashMap::with_capacity(changes.len());
        for (i, c) in changes.iter().enumerate() {
            last.insert(c.external_id(), i);
        }
        let keep: Vec<bool> = (0..changes.len())
            .map(|i| last.get(changes[i].external_id()) == Some(&i))
            .collect();
        drop(last);
        let kept: Vec<Change> = changes
            .into_iter()
            .zip(keep)
            .filter_map(|(change, keep)| keep.then_some(change))
            .collect();
        if run.report_bookings {
            let page: Vec<&Change> = kept.iter().collect();
            self.note_bookings(run, &page).await?;
        }
        for change in kept {
            run.buffer.push(change);
        }
        if run.buffer.rows.len() >= self.cfg.sync.buffer_events {
            let writing = Instant::now();
            let rows = run.buffer.take_rows();
            let mut tx = self.pool.begin().await.map_err(Error::from)?;
            run.buffer.staged += events::stage(&mut tx, &run.buffer.run_id, &rows, run.stamp).await?;
            tx.commit().await.map_err(Error::from)?;
            run.report.db_ms += writing.elapsed().as_secs_f64() * 1000.0;
        }
        let lease = self.cfg.sync.lease;
        if run.claim_renewed.elapsed() > lease / 3 {
            if !run.claim.renew(&self.pool, lease).await? {
                return Err(Restart::Moved); // another process took the calendar over
            }
            run.claim_renewed = Instant::now();
        }
        Ok(())
    }
}

pub(super) struct Run<'a> {
    pub(super) group: &'a Group,
    pub(super) full: bool,
    pub(super) stamp: NaiveDateTime,
    /// Two-way sync is on for the calendar's user (`calendar-subscription-sync`).
    pub(super) report_bookings: bool,
    /// With it: the last change of each event that may be a booking, by external id.
    pub(super) bookings: HashMap<String, bookings::Seen>,
    /// The calendar's time zone, as the provider's listing gave it (all-day events span its days).
    pub(super) tz: Tz,
    pub(super) report: SyncReport,
    buffer: Buffer,
    pub(super) claim: &'a Lease,
    pub(super) claim_renewed: Instant,
    /// Keep the legacy JSON cache of the calendar's credential current (`calendar-cache-sql-write`).
    pub(super) legacy_write: bool,
}

/// The changes a sync has read and not yet written: rows to upsert in memory (each external id
/// once), rows staged in the database when memory would grow past `buffer_events`, and the ids
/// whose last change removes them. Writing the staged rows, then the rows in memory, then the
/// removals gives every external id its last change. Resources replaced whole ([`Change::Resource`])
/// have their stored rows deleted first; a listing names each resource once, so none of them has
/// rows staged by an earlier page.
struct Buffer {
    run_id: String,
    rows: Vec<CacheEvent>,
    index: HashMap<String, usize>,
    removed: HashSet<String>,
    resources: HashSet<String>,
    staged: u64,
}

impl Buffer {
    fn new() -> Self {
        Buffer {
            run_id: uuid::Uuid::now_v7().to_string(),
            rows: Vec::new(),
            index: HashMap::new(),
            removed: HashSet::new(),
            resources: HashSet::new(),
            staged: 0,
        }
    }

    fn push(&mut self, change: Change) {
        match change {
            Change::Upsert(e) => {
                self.removed.remove(&e.external_id);
                match self.index.get(&e.external_id) {
                    Some(&i) => self.rows[i] = e,
                    None => {
                        self.index.insert(e.external_id.clone(), self.rows.len());
                        self.rows.push(e);
                    }
                }
            }
            Change::Remove { external_id, .. } => {
                if let Some(i) = self.index.remove(&external_id) {
                    // Keep positions stable: swap the row out and fix the index of the moved one.
                    self.rows.swap_remove(i);
                    if let Some(moved) = self.rows.get(i) {
                        self.index.insert(moved.external_id.clone(), i);
                    }
                }
                self.removed.insert(external_id);
            }
            Change::Resource { resource, rows } => {
                if !self.resources.insert(resource.clone()) {
                    // Named again in this run: its earlier rows give way.
                    self.rows.retain(|r| r.recurring_event_id.as_deref() != Some(&resource));
                    self.index = self
                        .rows
                        .iter()
                        .enumerate()
                        .map(|(i, r)| (r.external_id.clone(), i))
                        .collect();
                }
                for row in rows {
                    self.push(Change::Upsert(row));
                }
            }
        }
    }

    /// The rows in memory, leaving the buffer's memory part empty.
    fn take_rows(&mut self) -> Vec<CacheEvent> {
        self.index.clear();
        std::mem::take(&mut self.rows)
    }
}
