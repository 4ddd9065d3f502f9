//! Read replicas (`readDatabaseUrl`): Postgres hot standbys fed by streaming replication, which
//! reads may use while they are close enough to the primary.
//!
//! How far behind a standby is gets measured by the read itself, in the same round trip
//! ([`STANDBY_SQL`] is a part of every read statement), never by a poller. The measure:
//! - a standby whose WAL receiver is streaming and has replayed everything it received, and
//!   everything the primary last said it had written, is caught up: lag 0, however long ago the
//!   primary last committed (an idle primary sends nothing, so the last replayed commit's age says
//!   nothing about lag);
//! - otherwise the lag is the age of the last commit it replayed: every later commit is younger
//!   than that, so this bounds how old its answer can be;
//! - a server that is not in recovery (promoted, or a primary given as a replica) is not a replica.
//!
//! A replica that fails is left alone for a while (doubling, up to 30 s) and brought back by a
//! probe in the background, never by a waiting read; one that lags is left alone for a second.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sqlx::PgPool;

use super::sql::stmt;
use crate::error::Result;

/// The standby's state as the read measures it: `replica_lag_ms` (NULL when the server is not in
/// recovery) and `replay_lsn` (its replay position in bytes, for causal reads). The CASE leaves the
/// receiver's view unread on a primary (an init plan runs only when its value is needed).
pub const STANDBY_SQL: &str = "SELECT CASE WHEN pg_is_in_recovery() THEN (
    SELECT CASE
      WHEN w.pid IS NOT NULL AND COALESCE(w.status, 'streaming') = 'streaming'
           AND pg_last_wal_replay_lsn() >= GREATEST(pg_last_wal_receive_lsn(), w.latest_end_lsn) THEN 0
      ELSE COALESCE((extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp()) * 1000)::int8,
                    9000000000000000)
    END
    FROM (SELECT 1) one LEFT JOIN pg_stat_wal_receiver w ON true) END AS replica_lag_ms,
  CASE WHEN pg_is_in_recovery() THEN pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::int8 END AS replay_lsn";

/// The primary's WAL insert position in bytes, as a standby's replay position compares with it
/// (see [`primary_position`]): 8 kB pages with a 24-byte header, 40 bytes at a 16 MB segment's start.
pub const POSITION_SQL: &str =
    "SELECT CASE WHEN p % 16777216 = 40 THEN p - 40 WHEN p % 8192 = 24 THEN p - 24 ELSE p END \
     FROM (SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::int8 AS p) w";

/// Why a read left a replica for the primary (the `reason` label of
/// `calsync_replica_fallbacks_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// No answer: refused, down, or slower than its share of the read's deadline.
    Down,
    /// Its replay lags by more than `maxReplicaLagMs`.
    Lagging,
    /// It has not replayed a sync this process committed for a calendar of the read.
    BehindSync,
    /// It is not in recovery: promoted, or not a standby at all.
    NotStandby,
    /// It returned no calendar, which a replica behind the calendars' creation would too.
    NoRows,
}

impl Fallback {
    pub const ALL: [Fallback; 5] = [
        Fallback::Down,
        Fallback::Lagging,
        Fallback::BehindSync,
        Fallback::NotStandby,
        Fallback::NoRows,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Fallback::Down => "down",
            Fallback::Lagging => "lagging",
            Fallback::BehindSync => "behind_sync",
            Fallback::NotStandby => "not_standby",
            Fallback::NoRows => "no_rows",
        }
    }
}

/// What the read's standby columns say about the server that answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standby {
    pub lag_ms: i64,
    pub replay_lsn: i64,
}

/// Whether a replica's answer may be served: `Ok` with its lag, else why not. `columns` are the
/// read's `replica_lag_ms` and `replay_lsn` (from any row: they are the same in all), `needed` the
/// highest commit position this process wrote for the read's calendars.
pub fn judge(
    columns: Option<(Option<i64>, Option<i64>)>,
    max_lag: Duration,
    needed: Option<i64>,
) -> std::result::Result<Standby, Fallback> {
    let Some((lag, lsn)) = columns else {
        return Err(Fallback::NoRows);
    };
    let (Some(lag_ms), Some(replay_lsn)) = (lag, lsn) else {
        return Err(Fallback::NotStandby);
    };
    let standby = Standby { lag_ms, replay_lsn };
    if lag_ms > max_lag.as_millis() as i64 {
        return Err(Fallback::Lagging);
    }
    if needed.is_some_and(|n| n > replay_lsn) {
        return Err(Fallback::BehindSync);
    }
    Ok(standby)
}

/// One replica: its pool, whether a pooler is in front of it, and when it may be used again.
pub struct Replica {
    pub pool: PgPool,
    /// As `Engine::pooled`, for this replica's connections.
    pub pooled: AtomicBool,
    /// Its number in `readDatabaseUrl` from 1 (the metrics' `replica` label; never its address).
    pub label: String,
    state: Mutex<Health>,
}

#[derive(Default)]
struct Health {
    /// Not used before this instant.
    resting_until: Option<Instant>,
    /// Consecutive failures (the rest doubles with each).
    failures: u32,
    /// A background probe is under way.
    probing: bool,
    /// When a read or probe last found it within the bound.
    last_ok: Option<Instant>,
}

/// How long a lagging replica is left alone before a read tries it again.
const LAG_REST: Duration = Duration::from_secs(1);
/// The longest a failing replica is left alone.
const MAX_REST: Duration = Duration::from_secs(30);

impl Replica {
    pub fn new(pool: PgPool, pooled: bool, number: usize) -> Self {
        Replica {
            pool,
            pooled: AtomicBool::new(pooled),
            label: number.to_string(),
            state: Mutex::default(),
        }
    }

    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a read may use it now; when its rest after a failure is over and no probe runs,
    /// `Probe` asks the caller to start one (the read itself still goes elsewhere).
    pub fn availability(&self, now: Instant) -> Use {
        let mut h = self.health();
        match h.resting_until {
            None => Use::Yes,
            Some(t) if now < t => Use::No,
            Some(_) if h.failures == 0 => {
                h.resting_until = None;
                Use::Yes
            }
            Some(_) if h.probing => Use::No,
            Some(_) => {
                h.probing = true;
                Use::Probe
            }
        }
    }

    /// Records a read's or probe's outcome.
    pub fn record(&self, outcome: std::result::Result<(), Fallback>, now: Instant) {
        let mut h = self.health();
        h.probing = false;
        match outcome {
            Ok(()) => {
                h.failures = 0;
                h.resting_until = None;
                h.last_ok = Some(now);
            }
            Err(Fallback::BehindSync) | Err(Fallback::NoRows) => {
                h.failures = 0;
                h.resting_until = None;
            }
            Err(Fallback::Lagging) => {
                h.failures = 0;
                h.resting_until = Some(now + LAG_REST);
            }
            Err(Fallback::Down) | Err(Fallback::NotStandby) => {
                h.failures = h.failures.saturating_add(1);
                let rest = Duration::from_secs(1)
                    .saturating_mul(1 << h.failures.min(6).saturating_sub(1))
                    .min(MAX_REST);
                h.resting_until = Some(now + rest);
            }
        }
    }

    /// Whether a read or probe found it within the bound during the last `within`: what a read
    /// that cannot measure the lag itself (a flag read) relies on.
    pub fn recently_ok(&self, now: Instant, within: Duration) -> bool {
        self.health()
            .last_ok
            .is_some_and(|t| now.saturating_duration_since(t) <= within)
    }

    /// Asks the replica how far behind it is, as a read would (a probe of one that failed).
    pub async fn probe(&self, max_lag: Duration) -> std::result::Result<Standby, Fallback> {
        match stmt(STANDBY_SQL)
            .fetch_as::<(Option<i64>, Option<i64>)>(&self.pool)
            .await
        {
            Ok(rows) => judge(rows.first().copied(), max_lag, None),
            Err(_) => Err(Fallback::Down),
        }
    }
}

/// What [`Replica::availability`] allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    Yes,
    No,
    /// Not for this read, but probe it.
    Probe,
}

/// The replicas of an instance, taken in turn.
#[derive(Default)]
pub struct Replicas {
    pub list: Vec<Replica>,
    next: AtomicUsize,
}

impl Replicas {
    pub fn new(list: Vec<Replica>) -> Self {
        Replicas {
            list,
            next: AtomicUsize::new(0),
        }
    }

    /// The replicas in the order this read should try them (starting from the next in turn), and
    /// those whose probe is due.
    pub fn order(&self, now: Instant) -> (Vec<&Replica>, Vec<&Replica>) {
        let n = self.list.len();
        if n == 0 {
            return (Vec::new(), Vec::new());
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let (mut usable, mut probe) = (Vec::new(), Vec::new());
        for i in 0..n {
            let r = &self.list[(start + i) % n];
            match r.availability(now) {
                Use::Yes => usable.push(r),
                Use::Probe => probe.push(r),
                Use::No => {}
            }
        }
        (usable, probe)
    }

    pub async fn close(&self) {
        for r in &self.list {
            r.pool.close().await;
        }
    }
}

/// Causal reads: the primary's WAL position after each sync this process committed, per
/// `SelectedCalendar` row, so that a replica's answer for that calendar is used only once it has
/// replayed the sync. Entries older than `keep` are dropped: by then any replica within the lag
/// bound has replayed them.
pub struct Commits {
    seen: Mutex<HashMap<String, (i64, Instant)>>,
    keep: Duration,
}

impl Commits {
    pub fn new(max_lag: Duration) -> Self {
        Commits {
            seen: Mutex::default(),
            keep: (max_lag * 10).max(Duration::from_secs(60)),
        }
    }

    /// Records that `ids` were written by a commit at or before WAL position `lsn`.
    pub fn record<'a>(&self, ids: impl IntoIterator<Item = &'a str>, lsn: i64, now: Instant) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() > 10_000 {
            seen.retain(|_, (_, at)| now.duration_since(*at) < self.keep);
        }
        for id in ids {
            let e = seen.entry(id.to_string()).or_insert((lsn, now));
            *e = (e.0.max(lsn), now);
        }
    }

    /// The highest position recorded for any of `ids` lately.
    pub fn needed<'a>(&self, ids: impl IntoIterator<Item = &'a str>, now: Instant) -> Option<i64> {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.is_empty() {
            return None;
        }
        ids.into_iter()
            .filter_map(|id| seen.get(id))
            .filter(|(_, at)| now.duration_since(*at) < self.keep)
            .map(|(lsn, _)| *lsn)
            .max()
    }
}

/// The primary's current WAL insert position, read after a commit: every byte of that commit is
/// before it. Not the write position (`pg_current_wal_lsn`): a sync that clears a pending mark
/// commits asynchronously, and its commit record may not be written yet when it returns. Where the
/// last record ended at a page boundary, the insert position is past the next page's header, a
/// position a standby's replay reaches only with the next record: that header is taken off.
pub async fn primary_position(pool: &PgPool) -> Result<i64> {
    let lsn: Option<i64> = stmt(POSITION_SQL).scalar(pool).await?;
    Ok(lsn.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replica_answer_is_served_only_within_the_bound_and_after_this_process_commits() {
        let bound = Duration::from_millis(2000);
        assert_eq!(judge(None, bound, None), Err(Fallback::NoRows));
        assert_eq!(judge(Some((None, None)), bound, None), Err(Fallback::NotStandby));
        assert_eq!(
            judge(Some((Some(0), Some(100))), bound, None),
            Ok(Standby {
                lag_ms: 0,
                replay_lsn: 100
            })
        );
        assert_eq!(judge(Some((Some(2000), Some(100))), bound, None).unwrap().lag_ms, 2000);
        assert_eq!(
            judge(Some((Some(2001), Some(100))), bound, None),
            Err(Fallback::Lagging)
        );
        assert_eq!(
            judge(Some((Some(0), Some(100))), bound, Some(100)).unwrap().replay_lsn,
            100
        );
        assert_eq!(
            judge(Some((Some(0), Some(100))), bound, Some(101)),
            Err(Fallback::BehindSync)
        );
    }

    #[test]
    fn commits_keep_the_highest_position_per_calendar_for_a_while() {
        let c = Commits::new(Duration::from_secs(2));
        let t0 = Instant::now();
        assert_eq!(c.needed(["a"], t0), None);
        c.record(["a", "b"], 50, t0);
        c.record(["a"], 40, t0);
        assert_eq!(c.needed(["a"], t0), Some(50));
        assert_eq!(c.needed(["b", "x"], t0), Some(50));
        assert_eq!(c.needed(["x"], t0), None);
        assert_eq!(c.needed(["a"], t0 + Duration::from_secs(61)), None);
    }

    #[tokio::test]
    async fn a_failing_replica_rests_doubling_and_comes_back_through_one_probe() {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .connect_lazy("postgres://x@127.0.0.1:1/x")
            .unwrap();
        let r = Replica::new(pool, false, 1);
        let t0 = Instant::now();
        assert_eq!(r.availability(t0), Use::Yes);
        r.record(Err(Fallback::Down), t0);
        assert_eq!(r.availability(t0 + Duration::from_millis(999)), Use::No);
        assert_eq!(r.availability(t0 + Duration::from_secs(1)), Use::Probe);
        assert_eq!(
            r.availability(t0 + Duration::from_secs(1)),
            Use::No,
            "one probe at a time"
        );
        let t1 = t0 + Duration::from_secs(1);
        r.record(Err(Fallback::Down), t1);
        assert_eq!(r.availability(t1 + Duration::from_millis(1999)), Use::No);
        assert_eq!(r.availability(t1 + Duration::from_secs(2)), Use::Probe);
        assert!(!r.recently_ok(t1, Duration::from_secs(2)));
        r.record(Ok(()), t1);
        assert_eq!(r.availability(t1), Use::Yes);
        assert!(r.recently_ok(t1 + Duration::from_secs(2), Duration::from_secs(2)));
        assert!(!r.recently_ok(t1 + Duration::from_millis(2001), Duration::from_secs(2)));
        r.record(Err(Fallback::Lagging), t1);
        assert_eq!(r.availability(t1 + Duration::from_millis(500)), Use::No);
        assert_eq!(
            r.availability(t1 + LAG_REST),
            Use::Yes,
            "a lagging replica is tried by the next read"
        );
    }
}
