//! Feature-flag evaluation (SPEC §3) with a short in-process cache.
//!
//! For a user: the global `Feature.enabled` must be true AND the user must have the flag: a
//! `UserFeatures` row decides when present (an explicit `enabled = false` blocks inheritance);
//! otherwise the flag is on when any team the user is an accepted member of, or any ancestor of such
//! a team through `Team.parentId` (organizations, any depth), has a `TeamFeatures` row with
//! `enabled = true`. For a team: its own row decides, else the nearest ancestor that has a row.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sqlx::PgPool;

use crate::db::sql::stmt;

use crate::error::Result;

/// Serve and record the subscription cache.
pub const SUBSCRIPTION_CACHE: &str = "calendar-subscription-cache";
/// Two-way sync: report changes of the app's own bookings.
pub const SUBSCRIPTION_SYNC: &str = "calendar-subscription-sync";
/// Keep the legacy JSON cache current from syncs.
pub const CACHE_SQL_WRITE: &str = "calendar-cache-sql-write";
/// Serve reads from the SQL cache instead of the legacy JSON cache.
pub const CACHE_SQL_READ: &str = "calendar-cache-sql";

/// Who a flag is evaluated for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subject {
    /// A row of `users`.
    User(i32),
    /// A row of `Team` (teams and organizations alike).
    Team(i32),
}

const USERS_SQL: &str = r#"
WITH RECURSIVE wanted(uid) AS (SELECT DISTINCT unnest($2::int4[])),
teams(uid, team_id) AS (
    SELECT m."userId", m."teamId" FROM "Membership" m
    WHERE m."userId" = ANY($2::int4[]) AND m.accepted
  UNION
    SELECT teams.uid, t."parentId" FROM teams JOIN "Team" t ON t.id = teams.team_id
    WHERE t."parentId" IS NOT NULL
)
SELECT w.uid,
  COALESCE((SELECT f.enabled FROM "Feature" f WHERE f.slug = $1), false)
  AND COALESCE(
    (SELECT uf.enabled FROM "UserFeatures" uf WHERE uf."userId" = w.uid AND uf."featureId" = $1),
    EXISTS (SELECT 1 FROM teams JOIN "TeamFeatures" tf ON tf."teamId" = teams.team_id
            WHERE teams.uid = w.uid AND tf."featureId" = $1 AND tf.enabled)
  ) AS enabled
FROM wanted w
"#;

const TEAM_SQL: &str = r#"
WITH RECURSIVE chain(team_id, depth) AS (
    SELECT $2::int4, 0
  UNION ALL
    SELECT t."parentId", chain.depth + 1 FROM chain JOIN "Team" t ON t.id = chain.team_id
    WHERE t."parentId" IS NOT NULL AND chain.depth < 64
)
SELECT COALESCE((SELECT f.enabled FROM "Feature" f WHERE f.slug = $1), false)
  AND COALESCE((SELECT tf.enabled FROM chain JOIN "TeamFeatures" tf
                ON tf."teamId" = chain.team_id AND tf."featureId" = $1
                ORDER BY chain.depth LIMIT 1), false)
"#;

/// Cap on remembered answers; past it the cache starts over (it only saves round trips).
const MAX_ENTRIES: usize = 100_000;

/// Evaluates flags against the database and remembers answers for `ttl`.
pub struct Flags {
    ttl: Duration,
    cache: Mutex<HashMap<(String, Subject), (bool, Instant)>>,
}

impl Flags {
    /// A cache whose answers live for `ttl` (zero disables caching).
    pub fn new(ttl: Duration) -> Self {
        Flags {
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// A still-fresh cached answer, if any.
    pub fn cached(&self, slug: &str, who: Subject) -> Option<bool> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(&(slug.to_string(), who))
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(on, _)| *on)
    }

    fn remember(&self, slug: &str, answers: impl IntoIterator<Item = (Subject, bool)>) {
        if self.ttl.is_zero() {
            return;
        }
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= MAX_ENTRIES {
            cache.clear();
        }
        let now = Instant::now();
        for (who, on) in answers {
            cache.insert((slug.to_string(), who), (on, now));
        }
    }

    /// Forgets every cached answer.
    pub fn clear(&self) {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Whether `slug` is on for `who`.
    pub async fn is_enabled(&self, pool: &PgPool, slug: &str, who: Subject) -> Result<bool> {
        if let Some(on) = self.cached(slug, who) {
            return Ok(on);
        }
        let on = match who {
            Subject::User(id) => self
                .for_users(pool, slug, &[id])
                .await?
                .get(&id)
                .copied()
                .unwrap_or(false),
            Subject::Team(id) => {
                let on: bool = stmt(TEAM_SQL).text(slug).int(id).scalar(pool).await?.unwrap_or(false);
                self.remember(slug, [(who, on)]);
                on
            }
        };
        Ok(on)
    }

    /// Whether `slug` is on for each of `users`: cached answers first, the rest in one query.
    pub async fn for_users(&self, pool: &PgPool, slug: &str, users: &[i32]) -> Result<HashMap<i32, bool>> {
        let mut out = HashMap::with_capacity(users.len());
        let mut missing = Vec::new();
        for &u in users {
            match self.cached(slug, Subject::User(u)) {
                Some(on) => {
                    out.insert(u, on);
                }
                None => missing.push(u),
            }
        }
        if !missing.is_empty() {
            let rows: Vec<(i32, bool)> = stmt(USERS_SQL).text(slug).ints(&missing).fetch_as(pool).await?;
            self.remember(slug, rows.iter().map(|&(u, on)| (Subject::User(u), on)));
            out.extend(rows);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_expires_after_ttl() {
        let flags = Flags::new(Duration::from_millis(30));
        flags.remember("f", [(Subject::User(1), true)]);
        assert_eq!(flags.cached("f", Subject::User(1)), Some(true));
        assert_eq!(flags.cached("f", Subject::Team(1)), None);
        assert_eq!(flags.cached("g", Subject::User(1)), None);
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(flags.cached("f", Subject::User(1)), None);
    }

    #[test]
    fn zero_ttl_caches_nothing() {
        let flags = Flags::new(Duration::ZERO);
        flags.remember("f", [(Subject::User(1), true)]);
        assert_eq!(flags.cached("f", Subject::User(1)), None);
    }
}
