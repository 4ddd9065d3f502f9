//! The read path (SPEC §4): busy blocks from the cache for the calendars it can answer for
//! truthfully, and a reason for every calendar it cannot.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use sqlx::PgPool;

use crate::cache::legacy_format::{js_iso, lookup_window};
use crate::cache::{assemble, Answer, CalendarRow, Query, Route, Selection, Staleness};
use crate::config::LegacyReads;
use crate::db::reads::{read_pooled, read_prepared, LegacyLookup, Plan};
use crate::db::sql::pooler_symptom;
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

/// Where a read's answers come from, and how it reaches the database.
pub struct ReadOptions<'a> {
    pub bounds: Staleness,
    /// A transaction-mode pooler is in front of Postgres; a read that shows one is (a named
    /// statement gone missing) sets it and is repeated.
    pub pooled: &'a AtomicBool,
    pub legacy: LegacyReads,
    pub users: &'a CalendarUsers,
}

/// Runs the read: one SQL round trip when every user's flags are cached, one more per flag that is
/// not. With `legacy` other than `Off`, `calendar-cache-sql` picks each user's source (SPEC §8):
/// the statement looks at the cache(s) the read needs (both when a user's flag is not known yet, or
/// for a shadow read), in the same round trip.
pub async fn read(pool: &PgPool, flags: &Flags, query: &Query, opts: &ReadOptions<'_>) -> Result<Answer> {
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
    let rows = if opts.pooled.load(Ordering::Relaxed) {
        read_pooled(pool, &query.selection, range, plan, lookup).await?
    } else {
        match read_prepared(pool, &query.selection, range, plan, lookup).await {
            Ok(rows) => rows,
            Err(e) if pooler_symptom(&e) => {
                if !opts.pooled.swap(true, Ordering::Relaxed) {
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
    Ok(assemble(query, rows, &on, route.as_ref(), now, &opts.bounds))
}
