//! Read replicas (`readDatabaseUrl`): Postgres hot standbys fed by streaming replication, which
//! reads may use while they are close enough to the primary.
//!
//! How far behind a standby is gets measured by the read itself, in the same round trip
//! ([`STANDBY_SQL`] is a part of every read statement), never by a poller. The measure:
//! - a standby whose WAL receiver is streaming and has replayed everything it received, and
//!   everything the primary last said it had written, is caught up: lag 0, however long ago the
//!   primary last committed (an idle primary sends nothing, so the last replayed commit's age says
//!   nothing about lag). Seeing what the primary last said takes `pg_read_all_stats`; without it
//!   the shortcut is not taken;
//! - otherwise the lag is the age of the last commit it replayed: every later commit is younger
//!   than that, so this bounds how old its answer can be;
//! - a server that is not in recovery (promoted, or a primary given as a replica) is not a replica.
//!
//! Causal reads check the read's own snapshot: the statement also returns `pg_current_snapshot()`
//! (the snapshot its rows were read in), and a sync this process committed is in the answer only
//! if its transaction id is visible in it ([`Snapshot::sees`]). A replay position would not do: it
//! is read while the statement runs, after its snapshot was taken.
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
/// recovery) and `snapshot` (the statement's snapshot, `xmin:xmax:xip,…`, for causal reads). The
/// CASE leaves the receiver's view unread on a primary (an init plan runs only when its value is
/// needed).
pub const STANDBY_SQL: &str = "SELECT CASE WHEN pg_is_in_recovery() THEN (
    SELECT CASE
      WHEN w.pid IS NOT NULL AND w.status = 'streaming' AND w.latest_end_lsn IS NOT NULL
           AND pg_last_wal_replay_lsn() >= GREATEST(pg_last_wal_receive_lsn(), w.latest_end_lsn) THEN 0
      ELSE COALESCE((extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp()) * 1000)::int8,
                    9000000000000000)
    END
    FROM (SELECT 1) one LEFT JOIN pg_stat_wal_receiver w ON true) END AS replica_lag_ms,
  CASE WHEN pg_is_in_recovery() THEN pg_current_snapshot()::text END AS snapshot";

/// A transaction snapshot as `pg_current_snapshot()` prints it: `xmin:xmax:xip,xip,…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    xmin: i64,
    xmax: i64,
    running: Vec<i64>,
}

impl Snapshot {
    pub fn parse(s: &str) -> Option<Snapshot> {
        let mut parts = s.splitn(3, ':');
        let xmin = parts.next()?.parse().ok()?;
        let xmax = parts.next()?.parse().ok()?;
        let running = match parts.next()? {
            "" => Vec::new(),
            list => list.split(',').map(|x| x.parse().ok()).collect::<Option<_>>()?,
        };
        Some(Snapshot { xmin, xmax, running })
    }

    /// Whether the committed transaction `xid` is visible in this snapshot.
    pub fn sees(&self, xid: i64) -> bool {
        xid < self.xmin || (xid < self.xmax && !self.running.contains(&xid))
    }
}

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

/// Whether a replica's answer may be served: `Ok` with its lag, else why not. `lag_ms` and
/// `snapshot` are the read's standby columns (from any row: they are the same in all; `None`: no
/// row), `needed` the transactions of this process's syncs of the read's calendars.
pub fn judge(
    columns: Option<(Option<i64>, Option<&str>)>,
    max_lag: Duration,
    needed: &[i64],
) -> std::result::Result<i64, Fallback> {
    let Some((lag, snapshot)) = columns else {
        return Err(Fallback::NoRows);
    };
    let (Some(lag_ms), Some(snapshot)) = (lag, snapshot) else {
        return Err(Fallback::NotStandby);
    };
    if lag_ms > max_lag.as_millis() as i64 {
        return Err(Fallback::Lagging);
    }
    if !needed.is_empty() {
        let snapshot = Snapshot::parse(snapshot).ok_or(Fallback::BehindSync)?;
        if !needed.iter().all(|x| snapshot.sees(*x)) {
            return Err(Fallback::BehindSync);
        }
    }
    Ok(lag_ms)
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
    /// When a read claimed the probe that would bring it back (a claim whose probe never ran,
    /// because the read failed or was given up, lapses after `MAX_REST`).
    probing: Option<Instant>,
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
    /// `Probe` asks the caller to start one (the read itself still goes elsewhere). A caller that
    /// will not probe passes `claim: false`.
    pub fn availability(&self, now: Instant, claim: bool) -> Use {
        let mut h = self.health();
        match h.resting_until {
            None => Use::Yes,
            Some(t) if now < t => Use::No,
            Some(_) if h.failures == 0 => {
                h.resting_until = None;
                Use::Yes
            }
            Some(_) if !claim || h.probing.is_some_and(|t| now < t + MAX_REST) => Use::No,
            Some(_) => {
                h.probing = Some(now);
                Use::Probe
            }
        }
    }

    /// Records a read's or probe's outcome.
    /// The first failure of a run is logged (a warning with its code), and so is the recovery.
    pub fn record(&self, outcome: std::result::Result<(), Fallback>, now: Instant) {
        let mut h = self.health();
        h.probing = None;
        if outcome.is_err() {
            h.last_ok = None;
        }
        match outcome {
            Ok(()) => {
                if h.failures > 0 {
                    tracing::info!(replica = %self.label, code = "REPLICA_BACK", "a read replica that failed serves reads again");
                }
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
            Err(why @ (Fallback::Down | Fallback::NotStandby)) => {
                if h.failures == 0 {
                    let code = match why {
                        Fallback::NotStandby => "REPLICA_NOT_STANDBY",
                        _ => "REPLICA_UNAVAILABLE",
                    };
                    tracing::warn!(replica = %self.label, code, "a read replica cannot serve reads (unreachable, too slow, or not in recovery: promoted?); reads go to the primary and it is probed again");
                }
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

    /// Asks the replica how far behind it is, as a read would (a probe of one that failed): its
    /// lag or why it cannot serve, and the lag it measured.
    pub async fn probe(&self, max_lag: Duration) -> (std::result::Result<i64, Fallback>, Option<i64>) {
        match stmt(STANDBY_SQL)
            .fetch_as::<(Option<i64>, Option<String>)>(&self.pool)
            .await
        {
            Ok(rows) => {
                let row = rows.first().map(|(lag, s)| (*lag, s.as_deref()));
                (judge(row, max_lag, &[]), row.and_then(|r| r.0))
            }
            Err(_) => (Err(Fallback::Down), None),
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
    /// those whose probe is due (claimed for the caller when `claim`).
    pub fn order(&self, now: Instant, claim: bool) -> (Vec<&Replica>, Vec<&Replica>) {
        let n = self.list.len();
        if n == 0 {
            return (Vec::new(), Vec::new());
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let (mut usable, mut probe) = (Vec::new(), Vec::new());
        for i in 0..n {
            let r = &self.list[(start + i) % n];
            match r.availability(now, claim) {
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

/// The transaction and when it was recorded, per key; and when the map was last pruned.
type Seen = (HashMap<String, (i64, Instant)>, Option<Instant>);

/// Causal reads: the transaction id of each sync this process committed, per key (a
/// `SelectedCalendar` id, or `user:<id>` for reads of a user's calendars), so that a replica's
/// answer is used only if its snapshot sees them. Entries older than `keep` are dropped: by then
/// any replica within the lag bound has replayed them.
pub struct Commits {
    seen: Mutex<Seen>,
    keep: Duration,
}

impl Commits {
    pub fn new(max_lag: Duration) -> Self {
        Commits {
            seen: Mutex::default(),
            keep: (max_lag * 10).max(Duration::from_secs(60)),
        }
    }

    /// The key a read of user `user_id`'s calendars checks.
    pub fn user_key(user_id: i32) -> String {
        format!("user:{user_id}")
    }

    /// Records that transaction `xid` wrote `keys`.
    pub fn record<'a>(&self, keys: impl IntoIterator<Item = &'a str>, xid: i64, now: Instant) {
        let mut guard = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let (seen, pruned) = &mut *guard;
        if seen.len() > 10_000 && pruned.is_none_or(|t| now.duration_since(t) > Duration::from_secs(5)) {
            seen.retain(|_, (_, at)| now.duration_since(*at) < self.keep);
            *pruned = Some(now);
        }
        for key in keys {
            let e = seen.entry(key.to_string()).or_insert((xid, now));
            *e = (e.0.max(xid), now);
        }
    }

    /// The transactions recorded lately for any of `keys`.
    pub fn needed<'a>(&self, keys: impl IntoIterator<Item = &'a str>, now: Instant) -> Vec<i64> {
        let guard = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if guard.0.is_empty() {
            return Vec::new();
        }
        keys.into_iter()
            .filter_map(|k| guard.0.get(k))
            .filter(|(_, at)| now.duration_since(*at) < self.keep)
            .map(|(xid, _)| *xid)
            .collect()
    }
}

/// The id of the transaction on `conn` (assigned now if it has none), for [`Commits`].
pub async fn transaction_id(conn: &mut sqlx::PgConnection) -> Result<i64> {
    let id: String = super::sql::query_scalar("SELECT pg_current_xact_id()::text")
        .fetch_one(conn)
        .await?;
    id.parse()
        .map_err(|_| crate::error::Error::Database(format!("a transaction id that is not a number: {id}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replica_answer_is_served_only_within_the_bound_and_if_its_snapshot_sees_this_process_commits() {
        let bound = Duration::from_millis(2000);
        let snap = "100:105:101,103";
        assert_eq!(judge(None, bound, &[]), Err(Fallback::NoRows));
        assert_eq!(judge(Some((None, None)), bound, &[]), Err(Fallback::NotStandby));
        assert_eq!(judge(Some((Some(0), Some(snap))), bound, &[]), Ok(0));
        assert_eq!(judge(Some((Some(2000), Some(snap))), bound, &[]), Ok(2000));
        assert_eq!(
            judge(Some((Some(2001), Some(snap))), bound, &[]),
            Err(Fallback::Lagging)
        );
        assert_eq!(judge(Some((Some(0), Some(snap))), bound, &[99, 102, 104]), Ok(0));
        for unseen in [101, 103, 105, 200] {
            assert_eq!(
                judge(Some((Some(0), Some(snap))), bound, &[99, unseen]),
                Err(Fallback::BehindSync),
                "{unseen}"
            );
        }
        assert_eq!(
            judge(Some((Some(0), Some("garbage"))), bound, &[1]),
            Err(Fallback::BehindSync)
        );
        assert!(Snapshot::parse("7:7:").unwrap().sees(6));
        assert!(!Snapshot::parse("7:7:").unwrap().sees(7));
    }

    #[test]
    fn commits_keep_the_highest_transaction_per_key_for_a_while() {
        let c = Commits::new(Duration::from_secs(2));
        let t0 = Instant::now();
        assert!(c.needed(["a"], t0).is_empty());
        c.record(["a", "b"], 50, t0);
        c.record(["a"], 40, t0);
        assert_eq!(c.needed(["a"], t0), vec![50]);
        assert_eq!(c.needed(["b", "x"], t0), vec![50]);
        assert!(c.needed(["x"], t0).is_empty());
        assert!(c.needed(["a"], t0 + Duration::from_secs(61)).is_empty());
    }

    #[tokio::test]
    async fn a_failing_replica_rests_doubling_and_comes_back_through_one_probe() {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .connect_lazy("postgres://x@127.0.0.1:1/x")
            .unwrap();
        let r = Replica::new(pool, false, 1);
        let t0 = Instant::now();
        assert_eq!(r.availability(t0, true), Use::Yes);
        r.record(Err(Fallback::Down), t0);
        assert_eq!(r.availability(t0 + Duration::from_millis(999), true), Use::No);
        let t = t0 + Duration::from_secs(1);
        assert_eq!(r.availability(t, false), Use::No, "a flag read claims no probe");
        assert_eq!(r.availability(t, true), Use::Probe);
        assert_eq!(r.availability(t, true), Use::No, "one probe at a time");
        assert_eq!(
            r.availability(t + MAX_REST, true),
            Use::Probe,
            "a claim whose probe never ran lapses"
        );
        let t1 = t0 + Duration::from_secs(1);
        r.record(Err(Fallback::Down), t1);
        assert_eq!(r.availability(t1 + Duration::from_millis(1999), true), Use::No);
        assert_eq!(r.availability(t1 + Duration::from_secs(2), true), Use::Probe);
        assert!(!r.recently_ok(t1, Duration::from_secs(2)));
        r.record(Ok(()), t1);
        assert_eq!(r.availability(t1, true), Use::Yes);
        assert!(r.recently_ok(t1 + Duration::from_secs(2), Duration::from_secs(2)));
        assert!(!r.recently_ok(t1 + Duration::from_millis(2001), Duration::from_secs(2)));
        r.record(Err(Fallback::Lagging), t1);
        assert!(
            !r.recently_ok(t1, Duration::from_secs(2)),
            "flag reads leave a lagging replica"
        );
        assert_eq!(r.availability(t1 + Duration::from_millis(500), true), Use::No);
        assert_eq!(
            r.availability(t1 + LAG_REST, true),
            Use::Yes,
            "a lagging replica is tried by the next read"
        );
    }
}
