//! Options and results of the cron work (renewals, cleanup, status, settling) and the legacy
//! migration as JS sees them. Doc comments become the TypeScript docs.

use std::time::Duration;

use napi_derive::napi;

use crate::time::format_utc;

/// Options of `renewWatches`.
#[napi(object, object_to_js = false)]
#[derive(Default)]
pub struct RenewWatchesOptions {
    /// Renew channels that expire within this many milliseconds. Default 86400000 (24 h).
    pub margin_ms: Option<f64>,
    /// Concurrent provider operations per provider. Default 8.
    pub concurrency: Option<u32>,
    /// Calendars claimed per batch. Default 500.
    pub batch_size: Option<u32>,
    /// Safety net: resync watched calendars whose last successful sync is older than this many
    /// milliseconds, however healthy their channel looks. Default 21600000 (6 h); a negative value
    /// skips the safety net.
    pub resync_after_ms: Option<f64>,
    /// Consecutive subscribe failures that pause a calendar. Default 3.
    pub max_failures: Option<u32>,
    /// How long such a pause lasts, in milliseconds. Default 86400000 (24 h).
    pub pause_ms: Option<f64>,
    /// Start no new work after this many milliseconds (a serverless route's time limit, less what
    /// the route needs to answer: 250000 under Vercel's 300 s). Work left over is reported in
    /// `deferred`, `complete` is false, and the next run continues with it. Default: no limit.
    pub budget_ms: Option<f64>,
}

impl RenewWatchesOptions {
    /// The library's renewal options.
    pub fn into_options(self) -> crate::cron::RenewOptions {
        let mut o = crate::cron::RenewOptions::default();
        let ms = |v: f64| Duration::from_millis(v.max(0.0) as u64);
        if let Some(v) = self.margin_ms {
            o.policy.margin = ms(v);
        }
        if let Some(v) = self.max_failures {
            o.policy.max_failures = v as i32;
        }
        if let Some(v) = self.pause_ms {
            o.policy.pause = ms(v);
        }
        if let Some(v) = self.concurrency {
            o.concurrency = v.max(1) as usize;
        }
        if let Some(v) = self.batch_size {
            o.batch_size = v.max(1) as usize;
        }
        if let Some(v) = self.resync_after_ms {
            o.resync_after = (v >= 0.0).then(|| ms(v));
        }
        if let Some(v) = self.budget_ms {
            o.budget = Some(ms(v));
        }
        o
    }
}

/// What `renewWatches` did, counted by calendar (rows selecting one provider calendar count once).
#[napi(object)]
pub struct RenewReport {
    /// Calendars looked at.
    pub checked: i64,
    /// Newly subscribed (and synced).
    pub created: i64,
    /// Channels renewed (Google: new channel, old one stopped; Outlook: PATCH, or a new one on 404).
    pub renewed: i64,
    /// Rows given the channel their calendar already had.
    pub shared: i64,
    /// Channels stopped (flag off, credential invalid, generic calendar) and cached rows deleted.
    pub stopped: i64,
    /// Calendars whose action failed (counted in `syncSubscribedErrorCount`).
    pub failed: i64,
    /// Calendars another process had claimed.
    pub skipped: i64,
    /// Calendars pausing after repeated subscribe failures.
    pub paused: i64,
    /// Calendars resynced by the safety net.
    pub resynced: i64,
    /// Leaked channels stopped: opened by a process that failed or died before storing them, or
    /// replaced and not stopped then (the channel ledger).
    pub orphans_stopped: i64,
    /// Highest number of concurrent Google operations.
    pub peak_google_concurrency: i64,
    /// Highest number of concurrent Microsoft operations.
    pub peak_microsoft_concurrency: i64,
    /// Calendars left for the next run because the time budget ran out.
    pub deferred: i64,
    /// Batches that failed as a whole (a database error); the run went on.
    pub batch_errors: i64,
    /// Whether the run did everything it had to (false when the budget ran out).
    pub complete: bool,
}

impl From<crate::cron::RenewReport> for RenewReport {
    fn from(r: crate::cron::RenewReport) -> Self {
        let i = |v: u64| v as i64;
        RenewReport {
            checked: i(r.checked),
            created: i(r.created),
            renewed: i(r.renewed),
            shared: i(r.shared),
            stopped: i(r.stopped),
            failed: i(r.failed),
            skipped: i(r.skipped),
            paused: i(r.paused),
            resynced: i(r.resynced),
            orphans_stopped: i(r.orphans_stopped),
            peak_google_concurrency: i(r.peak("google")),
            peak_microsoft_concurrency: i(r.peak("microsoft")),
            deferred: i(r.deferred),
            batch_errors: i(r.batch_errors),
            complete: r.complete,
        }
    }
}

/// Options of `cleanup`.
#[napi(object, object_to_js = false)]
#[derive(Default)]
pub struct CleanupOptions {
    /// Delete cached events that ended before this ISO-8601 instant. Default: now.
    pub before: Option<String>,
    /// Rows per delete statement. Default 5000.
    pub batch_size: Option<u32>,
}

/// What `cleanup` did.
#[napi(object)]
pub struct CleanupResult {
    /// Cached events that ended before the cutoff.
    pub ended_events: i64,
    /// Cached events of calendars that are no longer watched.
    pub unwatched_events: i64,
    /// Expired rows of the legacy `CalendarCache`.
    pub legacy_rows: i64,
    /// Statements run (each deletes at most `batchSize` rows).
    pub statements: i64,
    /// The longest single statement, in milliseconds.
    pub longest_statement_ms: f64,
}

impl From<crate::cron::cleanup::CleanupReport> for CleanupResult {
    fn from(r: crate::cron::cleanup::CleanupReport) -> Self {
        CleanupResult {
            ended_events: r.ended_events as i64,
            unwatched_events: r.unwatched_events as i64,
            legacy_rows: r.legacy_rows as i64,
            statements: r.statements as i64,
            longest_statement_ms: r.longest_statement_ms,
        }
    }
}

/// Calendars of one provider in one health state.
#[napi(object)]
pub struct HealthCount {
    /// `google_calendar`, `office365_calendar`, `caldav_calendar` or `apple_calendar`.
    pub integration: String,
    /// `healthy`, `expiring` (channel ends within 24 h), `failing` (last sync or subscribe failed,
    /// or the credential is invalid), `stale` (no sync or confirmation within `staleAfterMs`; for a
    /// polled calendar, no successful poll within `pollStaleMs`), `unsubscribed`, or `unpolled` (a
    /// polled calendar never synced yet).
    #[napi(ts_type = "'healthy' | 'expiring' | 'failing' | 'stale' | 'unsubscribed' | 'unpolled'")]
    pub health: String,
    /// For `failing` calendars: the error code of their last sync failure (`PROVIDER_UNAVAILABLE`,
    /// `PROVIDER_AUTH`, …), when a sync failed. Failing calendars back off (a minute after the first
    /// failure, doubling up to 12 hours).
    pub reason: Option<String>,
    /// Number of calendars.
    pub calendars: i64,
}

/// Progress of the current (or last) `renewWatches` run.
#[napi(object)]
pub struct RenewProgress {
    /// Calendars handled so far.
    pub done: i64,
    /// Calendars that needed work.
    pub total: i64,
}

/// Options of `settle`.
#[napi(object, object_to_js = false)]
pub struct SettleOptions {
    /// The longest to wait, in milliseconds. Default 30000.
    pub timeout_ms: Option<f64>,
}

/// What `settle` saw.
#[napi(object)]
pub struct Settled {
    /// True when every background sync had finished.
    pub settled: bool,
    /// Background syncs still running when the time ran out.
    pub running: u32,
}

/// Which legacy cache rows `verifyLegacyCache` compares (none given: all).
#[napi(object, object_to_js = false)]
pub struct LegacyScope {
    pub user_id: Option<i32>,
    pub team_id: Option<i32>,
}

/// One interval where a legacy row and the SQL cache differ.
#[napi(object)]
pub struct LegacyDivergence {
    /// The provider calendar id.
    pub calendar: String,
    #[napi(ts_type = "'missing_block' | 'extra_block' | 'different_bounds'")]
    pub kind: String,
    pub start: String,
    pub end: String,
}

/// What `verifyLegacyCache` found for one legacy row.
#[napi(object)]
pub struct LegacyVerdict {
    pub credential_id: i32,
    pub user_id: Option<i32>,
    #[napi(ts_type = "'equal' | 'diverged' | 'not_comparable'")]
    pub state: String,
    /// Why the row is not comparable.
    pub reason: Option<String>,
    pub divergences: Vec<LegacyDivergence>,
}

impl From<crate::legacy::Verdict> for LegacyVerdict {
    fn from(v: crate::legacy::Verdict) -> Self {
        LegacyVerdict {
            credential_id: v.credential_id,
            user_id: v.user_id,
            state: v.state.to_string(),
            reason: v.reason,
            divergences: v
                .divergences
                .into_iter()
                .map(|d| LegacyDivergence {
                    calendar: d.calendar,
                    kind: d.kind.to_string(),
                    start: d.start,
                    end: d.end,
                })
                .collect(),
        }
    }
}

/// Where the migration from the legacy JSON cache stands.
#[napi(object)]
pub struct LegacyStage {
    /// Users with legacy rows (live or expired).
    pub users: i64,
    /// Of those, users with `calendar-cache-sql-write` on (their syncs keep the rows current).
    pub writing: i64,
    /// Of those, users with `calendar-cache-sql` on (their reads come from the SQL cache).
    pub reading_sql: i64,
    /// Legacy rows still valid.
    pub live_rows: i64,
    /// Legacy rows past their `expiresAt`.
    pub expired_rows: i64,
    /// Teams (and organizations) with a `TeamFeatures` row for either migration flag.
    pub teams: Vec<LegacyTeamStage>,
    /// Differences shadow reads recorded over the last 30 days (`legacyReads: 'shadow'`).
    pub divergences: i64,
    /// The latest of them, newest first (at most 20).
    pub last_divergences: Vec<RecordedDivergence>,
}

/// A team's migration flags, as evaluated for the team (its own row, else its organization's).
#[napi(object)]
pub struct LegacyTeamStage {
    pub team_id: i32,
    /// `calendar-cache-sql-write` on.
    pub writing: bool,
    /// `calendar-cache-sql` on.
    pub reading_sql: bool,
}

/// A difference between the legacy JSON cache and the SQL cache that shadow reads recorded: the
/// calendar and the interval, never event contents.
#[napi(object)]
pub struct RecordedDivergence {
    pub selected_calendar_id: String,
    #[napi(ts_type = "'missing_block' | 'extra_block' | 'different_bounds'")]
    pub kind: String,
    pub start: String,
    pub end: String,
    /// The source the reads served.
    #[napi(ts_type = "'sql' | 'legacy'")]
    pub served: String,
    pub first_seen_at: String,
    pub last_seen_at: String,
}

impl From<crate::legacy::Stage> for LegacyStage {
    fn from(st: crate::legacy::Stage) -> Self {
        LegacyStage {
            users: st.users as i64,
            writing: st.writing as i64,
            reading_sql: st.reading_sql as i64,
            live_rows: st.live_rows as i64,
            expired_rows: st.expired_rows as i64,
            teams: st
                .teams
                .into_iter()
                .map(|t| LegacyTeamStage {
                    team_id: t.team_id,
                    writing: t.writing,
                    reading_sql: t.reading_sql,
                })
                .collect(),
            divergences: st.divergences as i64,
            last_divergences: st
                .last_divergences
                .into_iter()
                .map(|d| RecordedDivergence {
                    selected_calendar_id: d.selected_calendar_id,
                    kind: d.kind,
                    start: format_utc(d.start),
                    end: format_utc(d.end),
                    served: d.served,
                    first_seen_at: format_utc(d.first_seen_at),
                    last_seen_at: format_utc(d.last_seen_at),
                })
                .collect(),
        }
    }
}

/// Options of `dropLegacyCache`.
#[napi(object, object_to_js = false)]
pub struct DropLegacyOptions {
    /// Rows per delete statement. Default 5000.
    pub batch_size: Option<u32>,
}

/// Options of `pollCalendars`.
#[napi(object, object_to_js = false)]
#[derive(Default)]
pub struct PollOptions {
    /// Poll a calendar once its last successful poll is this many milliseconds old. Default
    /// 300000 (5 min). Keep `pollStaleMs` (reads) above the cadence your cron achieves.
    pub interval_ms: Option<f64>,
    /// Concurrent polls. Default 4.
    pub concurrency: Option<u32>,
    /// Start no new poll after this many milliseconds; the rest is `deferred`. Default: no limit.
    pub budget_ms: Option<f64>,
}

impl PollOptions {
    /// The library's poll options.
    pub fn into_options(self) -> crate::cron::poll::PollOptions {
        let mut o = crate::cron::poll::PollOptions::default();
        let ms = |v: f64| Duration::from_millis(v.max(0.0) as u64);
        if let Some(v) = self.interval_ms {
            o.interval = ms(v);
        }
        if let Some(v) = self.concurrency {
            o.concurrency = v.max(1) as usize;
        }
        if let Some(v) = self.budget_ms {
            o.budget = Some(ms(v));
        }
        o
    }
}

/// What `pollCalendars` did, by calendar.
#[napi(object)]
pub struct PollReport {
    /// Polled calendars (CalDAV, iCloud) whose user has the cache on.
    pub checked: u32,
    /// Of those, due for a poll.
    pub due: u32,
    /// Polled successfully with a sync.
    pub synced: u32,
    /// Found unchanged by one request for their whole account (calendars sharing a CalDAV account
    /// are checked together: one request when nothing changed).
    pub unchanged: u32,
    /// Polls that failed: the calendar reads `sync_failed` (the app asks the server live) until a
    /// poll succeeds.
    pub failed: u32,
    /// Left for the next run (the budget ran out, or their server failed earlier in this run).
    pub deferred: u32,
    /// Every due calendar was polled.
    pub complete: bool,
}

impl From<crate::cron::poll::PollReport> for PollReport {
    fn from(r: crate::cron::poll::PollReport) -> Self {
        let n = |v: u64| v.min(u32::MAX as u64) as u32;
        PollReport {
            checked: n(r.checked),
            due: n(r.due),
            synced: n(r.synced),
            unchanged: n(r.unchanged),
            failed: n(r.failed),
            deferred: n(r.deferred),
            complete: r.complete,
        }
    }
}
