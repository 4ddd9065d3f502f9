//! The schema contract: what calsync needs from the Cal.com tables, and the SQL that creates them
//! for tests, the demo and new installs.

use std::collections::HashSet;

use sqlx::PgPool;

use super::sql::{query_scalar, stmt};
use crate::error::{Error, Result};

/// The subset of Cal.com's schema calsync touches (for tests, the demo and new installs).
pub const CALCOM_SQL: &str = include_str!("../../sql/calcom-schema.sql");
/// calsync's own table, needed in production too.
pub const CALSYNC_SQL: &str = include_str!("../../sql/calsync.sql");

/// The function a sync starts with (`calendars::claim_group`), created by [`CALSYNC_SQL`].
const SYNC_CLAIM_FUNCTION: &str = "calsync_sync_claim_v1";

/// Every (table, column) calsync reads or writes.
pub const REQUIRED: &[(&str, &[&str])] = &[
    ("users", &["id", "email", "timeZone"]),
    ("Team", &["id", "parentId"]),
    ("Membership", &["userId", "teamId", "accepted"]),
    ("Credential", &["id", "type", "key", "userId", "invalid"]),
    ("Booking", &["id", "uid"]),
    (
        "BookingReference",
        &[
            "type",
            "uid",
            "bookingId",
            "externalCalendarId",
            "deleted",
            "credentialId",
            "delegationCredentialId",
        ],
    ),
    ("CalendarSyncLease", &["key", "holder", "expiresAt"]),
    ("CalendarSyncStage", &["id", "runId", "externalId"]),
    ("CalendarSyncFailure", &["selectedCalendarId", "code", "failedAt"]),
    ("CalendarSyncPending", &["selectedCalendarId", "since", "last"]),
    (
        "CalendarSyncChannel",
        &[
            "id",
            "channelId",
            "selectedCalendarId",
            "externalId",
            "resourceId",
            "expiresAt",
            "openedAt",
        ],
    ),
    (
        "SelectedCalendar",
        &[
            "id",
            "userId",
            "integration",
            "externalId",
            "credentialId",
            "delegationCredentialId",
            "eventTypeId",
            "channelId",
            "channelKind",
            "channelResourceId",
            "channelResourceUri",
            "channelExpiration",
            "syncSubscribedAt",
            "syncSubscribedErrorAt",
            "syncSubscribedErrorCount",
            "syncToken",
            "syncedAt",
            "syncErrorAt",
            "syncErrorCount",
            "createdAt",
        ],
    ),
    (
        "CalendarCacheEvent",
        &[
            "id",
            "selectedCalendarId",
            "externalId",
            "externalEtag",
            "iCalUID",
            "iCalSequence",
            "summary",
            "description",
            "location",
            "start",
            "end",
            "isAllDay",
            "timeZone",
            "status",
            "recurringEventId",
            "originalStartTime",
            "createdAt",
            "updatedAt",
            "externalCreatedAt",
            "externalUpdatedAt",
        ],
    ),
    (
        "CalendarCache",
        &["credentialId", "key", "value", "expiresAt", "updatedAt", "userId"],
    ),
    ("Feature", &["slug", "enabled"]),
    (
        "DelegationCredential",
        &["id", "workspacePlatformId", "serviceAccountKey", "enabled"],
    ),
    ("WorkspacePlatform", &["id", "slug"]),
    ("UserFeatures", &["userId", "featureId", "enabled"]),
    ("TeamFeatures", &["teamId", "featureId", "enabled"]),
    (
        "CalendarSyncBookingChange",
        &[
            "id",
            "selectedCalendarId",
            "externalId",
            "uid",
            "userId",
            "integration",
            "start",
            "end",
            "cancelled",
            "changedAt",
            "takenUntil",
            "deliveries",
        ],
    ),
    (
        "CalendarSyncDivergence",
        &[
            "selectedCalendarId",
            "kind",
            "start",
            "end",
            "served",
            "firstSeenAt",
            "lastSeenAt",
        ],
    ),
    (
        "CalendarSyncState",
        &["selectedCalendarId", "windowStart", "windowEnd", "updatedAt"],
    ),
];

/// The DDL of the read functions (see `reads::read_functions`): the read statements verbatim,
/// their `$n` being the functions' parameters. Replaced on every apply, so an upgrade that changes a
/// read statement only needs `applySchema` (a changed result shape gets a new `_vN` name).
pub fn read_functions_sql() -> String {
    let mut out = String::new();
    for f in super::reads::read_functions() {
        let (name, args) = (&f.name, &f.args);
        // Dropped first: CREATE OR REPLACE cannot change the columns a function returns.
        out.push_str(&format!(
            "DROP FUNCTION IF EXISTS {name}({args});\nCREATE FUNCTION {name}({args}) RETURNS TABLE ({cols}) LANGUAGE plpgsql STABLE AS $calsync$\n\
             #variable_conflict use_column\nBEGIN\nRETURN QUERY\n{body};\nEND\n$calsync$;\n",
            cols = f.columns,
            body = f.body.trim_end().trim_end_matches(';'),
        ));
    }
    out
}

/// Names what `REQUIRED` lists but `present` (table, column) lacks: a whole missing table is named
/// once as `"Table"`, a missing column as `"Table"."column"`.
pub fn missing(present: &HashSet<(String, String)>) -> Vec<String> {
    let tables: HashSet<&str> = present.iter().map(|(t, _)| t.as_str()).collect();
    let mut out = Vec::new();
    for (table, columns) in REQUIRED {
        if !tables.contains(table) {
            out.push(format!("\"{table}\""));
            continue;
        }
        for col in *columns {
            if !present.contains(&(table.to_string(), col.to_string())) {
                out.push(format!("\"{table}\".\"{col}\""));
            }
        }
    }
    out
}

/// Fails with `SCHEMA_MISMATCH` naming every missing table and column.
pub async fn check(pool: &PgPool) -> Result<()> {
    let tables: Vec<&str> = REQUIRED.iter().map(|(t, _)| *t).collect();
    let rows: Vec<(String, String)> = stmt(
        "SELECT table_name::text, column_name::text FROM information_schema.columns \
         WHERE table_schema = ANY(current_schemas(false)) AND table_name = ANY($1)",
    )
    .texts(&tables)
    .fetch_as(pool)
    .await?;
    let mut gaps = missing(&rows.into_iter().collect());
    let functions: Vec<&str> = super::reads::read_functions()
        .map(|f| f.name.as_str())
        .chain([SYNC_CLAIM_FUNCTION])
        .collect();
    let present: Vec<String> =
        stmt("SELECT proname::text FROM pg_proc WHERE proname = ANY($1) AND pg_function_is_visible(oid)")
            .texts(&functions)
            .fetch_as::<(String,)>(pool)
            .await?
            .into_iter()
            .map(|(n,)| n)
            .collect();
    gaps.extend(
        functions
            .iter()
            .filter(|f| !present.iter().any(|p| p == *f))
            .map(|f| format!("function {f} (run `npx calsync schema`)")),
    );
    if gaps.is_empty() {
        Ok(())
    } else {
        Err(Error::SchemaMismatch(gaps))
    }
}

/// What [`apply`] did with the Cal.com tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CalcomTables {
    /// The database had none of them: the shipped subset was created.
    Created,
    /// The database already has Cal.com's tables (a real installation, where Prisma owns them):
    /// nothing of them was created, altered, indexed or inserted.
    Existing,
    /// The caller asked for calsync's own tables only.
    NotRequested,
}

impl CalcomTables {
    /// The name JS sees.
    pub fn as_str(self) -> &'static str {
        match self {
            CalcomTables::Created => "created",
            CalcomTables::Existing => "existing",
            CalcomTables::NotRequested => "not_requested",
        }
    }
}

/// The tables whose presence means "this is a Cal.com database".
const CALCOM_MARKERS: &[&str] = &["users", "SelectedCalendar", "Credential", "Feature"];

/// Applies calsync's own tables, and the Cal.com subset when `with_calcom` and the database has
/// none of Cal.com's tables yet (SPEC §2: never touch a real installation's tables). Idempotent.
pub async fn apply(pool: &PgPool, with_calcom: bool) -> Result<CalcomTables> {
    let mut tx = pool.begin().await?;
    // Serialize concurrent appliers on one database; CREATE ... IF NOT EXISTS alone races.
    sqlx::raw_sql("SELECT pg_advisory_xact_lock(hashtext('calsync.schema'))")
        .execute(&mut *tx)
        .await?;
    let outcome = if !with_calcom {
        CalcomTables::NotRequested
    } else {
        let existing: i64 = query_scalar(
            "SELECT count(*) FROM information_schema.tables \
             WHERE table_schema = ANY(current_schemas(false)) AND table_name = ANY($1)",
        )
        .bind(CALCOM_MARKERS)
        .fetch_one(&mut *tx)
        .await?;
        if existing > 0 {
            CalcomTables::Existing
        } else {
            sqlx::raw_sql(CALCOM_SQL).execute(&mut *tx).await?;
            CalcomTables::Created
        }
    };
    sqlx::raw_sql(CALSYNC_SQL).execute(&mut *tx).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(read_functions_sql()))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> HashSet<(String, String)> {
        REQUIRED
            .iter()
            .flat_map(|(t, cols)| cols.iter().map(move |c| (t.to_string(), c.to_string())))
            .collect()
    }

    #[test]
    fn complete_schema_has_no_gaps() {
        assert!(missing(&full()).is_empty());
    }

    #[test]
    fn names_missing_columns_and_tables() {
        let mut present = full();
        present.remove(&("SelectedCalendar".into(), "syncToken".into()));
        present.retain(|(t, _)| t != "CalendarSyncState");
        assert_eq!(
            missing(&present),
            vec![
                "\"SelectedCalendar\".\"syncToken\"".to_string(),
                "\"CalendarSyncState\"".to_string()
            ]
        );
    }

    #[test]
    fn shipped_sql_creates_every_required_table() {
        for (table, _) in REQUIRED {
            let created = |sql: &str| {
                ["CREATE TABLE", "CREATE UNLOGGED TABLE"]
                    .iter()
                    .any(|c| sql.contains(&format!("{c} IF NOT EXISTS \"{table}\"")))
            };
            assert!(
                created(CALCOM_SQL) || created(CALSYNC_SQL),
                "{table} is not created by sql/"
            );
        }
    }
}
