//! The read statement: one round trip per read that returns, per requested calendar, its
//! bookkeeping and its busy blocks (and, during the migration, its part of the legacy JSON cache
//! row), prepared on direct connections or called as a PL/pgSQL function behind a pooler.

use std::sync::LazyLock;

use chrono::NaiveDateTime;
use futures_util::TryStreamExt;
use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgPool, Row};

use super::replicas::STANDBY_SQL;
use super::sql::{prepared_as, stmt};
use crate::error::Result;

const READ_BY_IDS: &str = include_str!("read_by_ids.sql");
const READ_BY_USER: &str = include_str!("read_by_user.sql");

/// Which caches a read's statement looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// The SQL cache only.
    Sql = 0,
    /// Both: the SQL cache's rows with each calendar's part of its legacy JSON cache row.
    Both = 1,
    /// The legacy JSON cache only (every calendar's user reads from it).
    Legacy = 2,
}

macro_rules! read_columns {
    () => {
        "req_id text, user_id int4, integration text, owner_id text, channel_id text, \
    channel_expiration timestamp, subscribed_at timestamp, synced_at timestamp, sync_error_at timestamp, \
    window_start timestamp, window_end timestamp, sync_errors int4, pending_ms int8, credential_invalid bool, starts timestamp[], ends timestamp[]"
    };
}

/// The columns every read statement ends with: the answering server's standby state
/// (`replicas::STANDBY_SQL`), the same in every row.
macro_rules! standby_columns {
    () => {
        ", replica_lag_ms int8, snapshot text"
    };
}

/// A read statement, also installed as a PL/pgSQL function (see [`read_functions`]).
pub struct ReadFunction {
    pub name: String,
    pub args: String,
    /// The columns it returns (one row per requested calendar).
    pub columns: &'static str,
    /// The statement, its `$n` being the function's parameters.
    pub body: String,
    /// The call of the function.
    call: String,
    /// The call wrapped in `COPY … TO STDOUT (FORMAT binary)`, for reads behind a pooler.
    copy: String,
}

/// The read statements: [by ids, by user] × [`Plan::Sql`, `Plan::Both`, `Plan::Legacy`]. The
/// legacy ones take three more parameters after the plain read's: the legacy key's window start
/// and end, and now.
static STATEMENTS: LazyLock<[[ReadFunction; 3]; 2]> = LazyLock::new(|| {
    const AVAILABILITY: &str = include_str!("availability.sql");
    const SELECT: &str = include_str!("read_select.sql");
    let with_legacy = |head: &str, params: usize, both: bool| {
        let lookup = include_str!("legacy_lookup.sql")
            .replace("$LMIN", &format!("${}", params + 1))
            .replace("$LMAX", &format!("${}", params + 2))
            .replace("$NOW", &format!("${}", params + 3));
        if both {
            format!(
                "{head}{AVAILABILITY}, base AS (\n{SELECT})\n{lookup}{}",
                include_str!("legacy_select.sql")
            )
        } else {
            format!("{head}{lookup}{}", include_str!("legacy_only.sql"))
        }
    };
    // The three statements of one selection, in `Plan` order: `args` are the plain read's
    // parameter types; the legacy ones add the key window and now.
    // Every statement also says whether the server answering it is a standby and how far behind.
    let measured = |body: String| format!("SELECT q.*, s.* FROM (\n{body}) q\nCROSS JOIN ({STANDBY_SQL}) s");
    let family = |selection: &str, head: &str, args: &str| {
        let params = args.split(',').count();
        let legacy_args = format!("{args}, text, text, timestamp");
        let function = |suffix: &str, args: &str, columns: &'static str, body: String| {
            let placeholders = (1..=args.split(',').count())
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ");
            let call = format!("SELECT * FROM calsync_read_by_{selection}{suffix}({placeholders})");
            ReadFunction {
                name: format!("calsync_read_by_{selection}{suffix}"),
                copy: format!("COPY ({call}) TO STDOUT (FORMAT binary)"),
                call,
                args: args.to_string(),
                columns,
                body: measured(body),
            }
        };
        [
            function("_v2", args, PLAIN, format!("{head}{AVAILABILITY}{SELECT}")),
            function("_legacy_v2", &legacy_args, LEGACY, with_legacy(head, params, true)),
            function(
                "_legacy_only_v2",
                &legacy_args,
                LEGACY,
                with_legacy(head, params, false),
            ),
        ]
    };
    const PLAIN: &str = concat!(read_columns!(), standby_columns!());
    const LEGACY: &str = concat!(
        read_columns!(),
        ", legacy_found bool, legacy_calendar text",
        standby_columns!()
    );
    [
        family("ids", READ_BY_IDS, "text[], timestamp, timestamp"),
        family("user", READ_BY_USER, "int4, timestamp, timestamp, int4"),
    ]
});

pub fn statement(selection: &Selection, plan: Plan) -> &'static ReadFunction {
    &STATEMENTS[matches!(selection, Selection::User { .. }) as usize][plan as usize]
}

/// The read statements, installed by `applySchema` as PL/pgSQL functions of calsync's, for reads
/// behind a transaction-mode pooler. A function's plan is cached by each server session, whoever's
/// client runs on it, so such a read is one short simple-protocol call that still skips planning
/// (which costs as much as executing this statement).
pub fn read_functions() -> impl Iterator<Item = &'static ReadFunction> {
    STATEMENTS.iter().flatten()
}

/// Which calendars to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// These `SelectedCalendar` ids.
    Ids(Vec<String>),
    /// The calendars a user selected: for an event type, or the user-level ones (`None`).
    User { user_id: i32, event_type_id: Option<i32> },
}

/// One requested calendar as the read query returns it.
#[derive(Debug, Clone)]
pub struct CalendarRow {
    pub req_id: String,
    pub user_id: i32,
    pub integration: String,
    pub owner_id: String,
    pub channel_id: Option<String>,
    pub channel_expiration: Option<NaiveDateTime>,
    pub subscribed_at: Option<NaiveDateTime>,
    pub synced_at: Option<NaiveDateTime>,
    pub sync_error_at: Option<NaiveDateTime>,
    pub window_start: Option<NaiveDateTime>,
    pub window_end: Option<NaiveDateTime>,
    pub sync_errors: i32,
    /// Milliseconds since the oldest change announced for the calendar that no sync has covered.
    pub pending_ms: Option<i64>,
    pub credential_invalid: bool,
    pub starts: Option<Vec<NaiveDateTime>>,
    pub ends: Option<Vec<NaiveDateTime>>,
    /// What the legacy JSON cache holds for the calendar, when the read looked it up.
    pub legacy: Option<LegacyCell>,
    /// The answering server's standby state (`replicas::STANDBY_SQL`): NULL on a primary.
    pub replica_lag_ms: Option<i64>,
    pub snapshot: Option<String>,
}

/// A calendar's part of the legacy JSON cache row its read looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyCell {
    /// A live row exists for the key.
    pub found: bool,
    /// The row's `calendars[<external id>]`, as JSON text.
    pub calendar: Option<String>,
}

impl<'r> FromRow<'r, PgRow> for CalendarRow {
    fn from_row(r: &'r PgRow) -> sqlx::Result<Self> {
        Ok(CalendarRow {
            req_id: r.try_get("req_id")?,
            user_id: r.try_get("user_id")?,
            integration: r.try_get("integration")?,
            owner_id: r.try_get("owner_id")?,
            channel_id: r.try_get("channel_id")?,
            channel_expiration: r.try_get("channel_expiration")?,
            subscribed_at: r.try_get("subscribed_at")?,
            synced_at: r.try_get("synced_at")?,
            sync_error_at: r.try_get("sync_error_at")?,
            window_start: r.try_get("window_start")?,
            window_end: r.try_get("window_end")?,
            sync_errors: r.try_get("sync_errors")?,
            pending_ms: r.try_get("pending_ms")?,
            credential_invalid: r.try_get("credential_invalid")?,
            starts: r.try_get("starts")?,
            ends: r.try_get("ends")?,
            legacy: match r.try_column("legacy_found") {
                Ok(_) => Some(LegacyCell {
                    found: r.try_get("legacy_found")?,
                    calendar: r.try_get("legacy_calendar")?,
                }),
                Err(_) => None,
            },
            replica_lag_ms: r.try_get("replica_lag_ms")?,
            snapshot: r.try_get("snapshot")?,
        })
    }
}

/// The legacy lookup of a read: the key window's bounds as the key writes them, and now.
pub struct LegacyLookup {
    pub time_min: String,
    pub time_max: String,
    pub now: NaiveDateTime,
}

/// Direct connection: the read statement, prepared once per connection (binary rows, a cached plan).
pub async fn read_prepared(
    pool: &PgPool,
    selection: &Selection,
    (min, max): (NaiveDateTime, NaiveDateTime),
    plan: Plan,
    legacy: Option<&LegacyLookup>,
) -> sqlx::Result<Vec<CalendarRow>> {
    let q = prepared_as(statement(selection, plan).body.as_str());
    let q = match selection {
        Selection::Ids(ids) => q.bind(ids).bind(min).bind(max),
        Selection::User { user_id, event_type_id } => q.bind(user_id).bind(min).bind(max).bind(event_type_id),
    };
    match legacy {
        None => q.fetch_all(pool).await,
        Some(l) => q.bind(&l.time_min).bind(&l.time_max).bind(l.now).fetch_all(pool).await,
    }
}

/// Behind a pooler: one simple-protocol message calling a read function (`read_functions`), whose
/// plan the server session keeps, its rows copied out in binary (`binary`): as cheap to send and
/// to read as a prepared statement's binary rows, where text would print and parse every timestamp.
pub async fn read_pooled(
    pool: &PgPool,
    selection: &Selection,
    (min, max): (NaiveDateTime, NaiveDateTime),
    plan: Plan,
    legacy: Option<&LegacyLookup>,
) -> Result<Vec<CalendarRow>> {
    let call = stmt(statement(selection, plan).copy.as_str());
    let call = match selection {
        Selection::Ids(ids) => call.texts(ids).ts(min).ts(max),
        Selection::User { user_id, event_type_id } => call.int(*user_id).ts(min).ts(max).int(*event_type_id),
    };
    let call = match legacy {
        None => call,
        Some(l) => call.text(l.time_min.as_str()).text(l.time_max.as_str()).ts(l.now),
    };
    let sql = call.render()?;
    let mut conn = Copying {
        conn: Some(pool.acquire().await?),
        finished: false,
    };
    let mut answer = Vec::with_capacity(4096);
    {
        let c = conn.conn.as_mut().expect("held until dropped");
        let mut stream = c.copy_out_raw(&sql).await?;
        while let Some(chunk) = stream.try_next().await? {
            answer.extend_from_slice(&chunk);
        }
    }
    conn.finished = true;
    super::binary::read_rows(&answer)
}

/// A connection running a `COPY … TO STDOUT`: unless the copy ran to its end (the read gave up on
/// it at its deadline, or it failed before starting), the connection may still have the copy's
/// messages to read, so it is closed instead of going back to the pool.
struct Copying {
    conn: Option<sqlx::pool::PoolConnection<sqlx::Postgres>>,
    finished: bool,
}

impl Drop for Copying {
    fn drop(&mut self) {
        if let (false, Some(c)) = (self.finished, self.conn.as_mut()) {
            c.close_on_drop();
        }
    }
}

/// The read rows of `ids` over `[min, max)` through the read function, on any connection (inside a
/// transaction too, which then sees its own writes).
pub async fn rows_by_ids<'e>(
    ex: impl sqlx::Executor<'e, Database = sqlx::Postgres>,
    ids: &[String],
    min: NaiveDateTime,
    max: NaiveDateTime,
) -> Result<Vec<CalendarRow>> {
    stmt(statement(&Selection::Ids(Vec::new()), Plan::Sql).call.as_str())
        .texts(ids)
        .ts(min)
        .ts(max)
        .fetch_as(ex)
        .await
}
