//! The read path (SPEC §4): busy blocks from the cache for the calendars it can answer for
//! truthfully, and a reason for every calendar it cannot.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sqlx::PgPool;

use crate::cache::legacy_format::{js_iso, lookup_window};
use crate::cache::{assemble, Answer, CalendarRow, Query, Route, Selection, Staleness};
use crate::config::LegacyReads;
use crate::db::reads::{read_pooled, read_prepared, LegacyLookup, Plan};
use crate::db::replicas::{judge, Commits, Fallback, Replicas};
use crate::db::sql::pooler_symptom;
use crate::db::within;
use crate::error::Result;
use crate::flags::{Flags, Subject, CACHE_SQL_READ, SUBSCRIPTION_CACHE};

/// Which user each `SelectedCalendar` row read lately belongs to (a row never changes users), so
/// that a read whose users' `calendar-cache-sql` flags are cached can look at only the cache that
/// serves them.
#[derive(Default)]
pub struct CalendarUsers(std::sync::Mutex<HashMap<String, i32>>);

impl CalendarUsers {
    /// `calendar-cache-sql` for each user of the query's calendars, if every user and flag is
    /// known in-process.
    fn sources(&self, query: &Query, flags: &Flags) -> Option<HashMap<i32, bool>> {
        let users: Vec<i32> = match &query.selection {
            Selection::User { user_id, .. } => vec![*user_id],
            Selection::Ids(ids) => {
                let known = self.0.lock().unwrap_or_else(|p| p.into_inner());
                ids.iter().map(|id| known.get(id).copied()).collect::<Option<_>>()?
            }
        };
        users
            .into_iter()
            .map(|u| Some((u, flags.cached(CACHE_SQL_READ, Subject::User(u))?)))
            .collect()
    }

    fn remember(&self, rows: &[CalendarRow]) {
        let mut known = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if known.len() + rows.len() > 100_000 {
            known.clear(); // it only saves work
        }
        for r in rows {
            known.insert(r.req_id.clone(), r.user_id);
        }
    }
}

/// Where a read's answers come from.
pub struct ReadOptions<'a> {
    pub bounds: Staleness,
    pub legacy: LegacyReads,
    pub users: &'a CalendarUsers,
    /// A replica's answer lagging by more than this is not served (`maxReplicaLagMs`).
    pub max_replica_lag: Duration,
    /// How long a replica may take to answer before the read goes to the primary.
    pub replica_budget: Duration,
}

/// A server a read can run on.
#[derive(Clone, Copy)]
pub struct Target<'a> {
    pub pool: &'a PgPool,
    /// A transaction-mode pooler is in front of it; a read that shows one is (a named statement
    /// gone missing) sets it and is repeated.
    pub pooled: &'a AtomicBool,
}

/// Which server answered a read, and what the replicas did.
#[derive(Debug, Default)]
pub struct Served {
    /// The replica asked (its `label`), if any.
    pub asked: Option<String>,
    /// Whether it answered (else the primary did).
    pub by_replica: bool,
    /// The replica's lag as the read measured it last (whether or not it then served).
    pub lag_ms: Option<i64>,
    /// Replicas tried and left, with why.
    pub fallbacks: Vec<(String, Fallback)>,
    /// Replicas whose rest after a failure is over: probe them (in the background).
    pub probes: Vec<usize>,
}

/// Runs the read on a replica when one is usable and its answer may be served (within
/// `max_replica_lag`, its snapshot seeing this process's syncs of the read's calendars), else on
/// the primary: a replica that fails, lags or was promoted never fails a read.
pub async fn serve(
    primary: Target<'_>,
    replicas: &Replicas,
    commits: &Commits,
    flags: &Flags,
    query: &Query,
    opts: &ReadOptions<'_>,
) -> Result<(Answer, Served)> {
    let (usable, due) = replicas.order(Instant::now(), true);
    let mut served = Served {
        probes: due
            .iter()
            .filter_map(|d| replicas.list.iter().position(|r| std::ptr::eq(r, *d)))
            .collect(),
        ..Served::default()
    };
    if let Some(r) = usable.first() {
        served.asked = Some(r.label.clone());
        // This process's syncs of the calendars asked for: those the replica returned (their
        // owner rows too), and for ids it did not return, or a user's calendars, the same keys
        // the sync recorded.
        let asked: Vec<String> = match &query.selection {
            Selection::Ids(ids) => ids.clone(),
            Selection::User { user_id, .. } => vec![Commits::user_key(*user_id)],
        };
        let measured = std::sync::Mutex::new(None);
        let check = |rows: &[CalendarRow]| {
            let keys = rows
                .iter()
                .flat_map(|r| [r.req_id.as_str(), r.owner_id.as_str()])
                .chain(asked.iter().map(String::as_str));
            let needed = commits.needed(keys, Instant::now());
            let columns = rows.first().map(|r| (r.replica_lag_ms, r.snapshot.as_deref()));
            *measured.lock().unwrap_or_else(|p| p.into_inner()) = columns.and_then(|c| c.0);
            judge(columns, opts.max_replica_lag, &needed)
        };
        let target = Target {
            pool: &r.pool,
            pooled: &r.pooled,
        };
        // A replica behind (its lag past the bound, or a sync of this process not replayed yet) is
        // asked once more before the primary: replaying a few records takes less than a round trip,
        // and WAL without commits (hint bits, vacuum) leaves a healthy standby briefly behind with an
        // old last-commit time, which the lag measure must count as lag.
        let attempts = async {
            let mut first = true;
            loop {
                match read(target, flags, query, opts, Some(&check)).await? {
                    Checked::Refused(Fallback::Lagging | Fallback::BehindSync) if first => first = false,
                    other => return Ok(other),
                }
            }
        };
        let outcome = within(opts.replica_budget, "replica read", attempts).await;
        served.lag_ms = *measured.lock().unwrap_or_else(|p| p.into_inner());
        let outcome = match outcome {
            Ok(Checked::Served(answer)) => {
                r.record(Ok(()), Instant::now());
                served.by_replica = true;
                return Ok((*answer, served));
            }
            Ok(Checked::Refused(why)) => why,
            Err(e) => {
                tracing::debug!(code = e.code(), replica = %r.label, "a replica did not answer a read; the primary does");
                Fallback::Down
            }
        };
        r.record(Err(outcome), Instant::now());
        served.fallbacks.push((r.label.clone(), outcome));
    }
    match read(primary, flags, query, opts, None).await? {
        Checked::Served(answer) => Ok((*answer, served)),
        Checked::Refused(_) => unreachable!("a read without a check is never refused"),
    }
}

/// What a read found: an answer, or a replica answer its check refused.
enum Checked {
    Served(Box<Answer>),
    Refused(Fallback),
}

/// Whether rows from a replica may be served (see [`judge`]).
type Check<'c> = &'c (dyn Fn(&[CalendarRow]) -> std::result::Result<i64, Fallback> + Sync);

/// Runs the read on `target`: one SQL round trip when every user's flags are cached, one more per
/// flag that is not. With `legacy` other than `Off`, `calendar-cache-sql` picks each user's source
/// (SPEC §8): the statement looks at the cache(s) the read needs (both when a user's flag is not
/// known yet, or for a shadow read), in the same round trip. With `check`, the rows are checked
/// before anything else is asked.
async fn read(
    target: Target<'_>,
    flags: &Flags,
    query: &Query,
    opts: &ReadOptions<'_>,
    check: Option<Check<'_>>,
) -> Result<Checked> {
    let pool = target.pool;
    let now = crate::time::now_db();
    let window = (opts.legacy != LegacyReads::Off).then(|| lookup_window(now, query.time_max));
    let known = match opts.legacy {
        LegacyReads::Switch => opts.users.sources(query, flags),
        _ => None,
    };
    let plan = match (window, &known) {
        (None, _) => Plan::Sql,
        (Some(_), Some(k)) if k.values().all(|sql| *sql) => Plan::Sql,
        (Some(_), Some(k)) if k.values().all(|sql| !*sql) => Plan::Legacy,
        _ => Plan::Both,
    };
    let lookup = window.filter(|_| plan != Plan::Sql).map(|(lmin, lmax)| LegacyLookup {
        time_min: js_iso(lmin),
        time_max: js_iso(lmax),
        now,
    });
    let lookup = lookup.as_ref();
    let range = (query.time_min.naive_utc(), query.time_max.naive_utc());
    let rows = if target.pooled.load(Ordering::Relaxed) {
        read_pooled(pool, &query.selection, range, plan, lookup).await?
    } else {
        match read_prepared(pool, &query.selection, range, plan, lookup).await {
            Ok(rows) => rows,
            Err(e) if pooler_symptom(&e) => {
                if !target.pooled.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "a named prepared statement failed as it does behind a transaction-mode pooler; \
                         reads now avoid them (set pooler: true or ?pgbouncer=true to say so up front)"
                    );
                }
                read_pooled(pool, &query.selection, range, plan, lookup).await?
            }
            Err(e) => return Err(e.into()),
        }
    };
    if let Some(Err(why)) = check.map(|c| c(&rows)) {
        return Ok(Checked::Refused(why));
    }
    let mut users: Vec<i32> = rows.iter().map(|r| r.user_id).collect();
    users.sort_unstable();
    users.dedup();
    let on = match plan {
        Plan::Legacy => HashMap::new(),
        _ => flags.for_users(pool, SUBSCRIPTION_CACHE, &users).await?,
    };
    let sql = match (window, known) {
        (None, _) => HashMap::new(),
        (Some(_), Some(known)) => known,
        (Some(_), None) => {
            opts.users.remember(&rows);
            flags.for_users(pool, CACHE_SQL_READ, &users).await?
        }
    };
    let route = window.map(|(_, lmax)| Route {
        sql: &sql,
        shadow: opts.legacy == LegacyReads::Shadow,
        legacy_end: lmax.naive_utc(),
    });
    Ok(Checked::Served(Box::new(assemble(
        query,
        rows,
        &on,
        route.as_ref(),
        now,
        &opts.bounds,
    ))))
}
