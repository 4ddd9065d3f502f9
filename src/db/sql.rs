//! Statements that work through a transaction-mode connection pooler (PgBouncer, Supavisor, Neon's
//! pooler; SPEC §12), where consecutive messages of one client may reach different server sessions.
//!
//! Two forms, and one exception:
//! - [`Stmt`]: one statement outside any transaction, sent as a single simple-protocol message with
//!   its values written in as escaped literals. One round trip, no prepared statement at all, and
//!   Postgres plans it for the actual values (as an unnamed statement would be).
//! - [`query`] / [`query_scalar`]: unnamed extended-protocol statements for use inside
//!   a transaction only (the pooler pins a transaction to one server session). Bulk binary
//!   parameters (`UNNEST` arrays) and `COPY` go this way.
//! - [`prepared_as`]: the read path's named statement, on direct connections only.
//!
//! sqlx's default — a named statement cached per client connection — breaks behind a pooler
//! (`prepared statement "sqlx_s_1" already exists`), and an unnamed statement outside a transaction
//! is parsed and executed in two round trips that the pooler may send to two different sessions.

use std::fmt::Write as _;

use chrono::NaiveDateTime;
use serde_json::Value;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::{AssertSqlSafe, Executor, FromRow, Postgres, Row};

use crate::error::{Error, Result};

/// An unnamed statement, for use inside a transaction.
pub fn query(sql: &'static str) -> sqlx::query::Query<'static, Postgres, PgArguments> {
    sqlx::query(sql).persistent(false)
}

/// An unnamed single-value statement, for use inside a transaction.
pub fn query_scalar<T>(sql: &'static str) -> sqlx::query::QueryScalar<'static, Postgres, T, PgArguments>
where
    (T,): for<'r> FromRow<'r, PgRow>,
{
    sqlx::query_scalar(sql).persistent(false)
}

/// A named prepared statement, cached per connection: for the read path on a direct connection
/// only, where a cached plan is worth it. Never behind a pooler (see the module docs).
pub fn prepared_as<T>(sql: &'static str) -> sqlx::query::QueryAs<'static, Postgres, T, PgArguments>
where
    T: for<'r> FromRow<'r, PgRow>,
{
    sqlx::query_as(sql)
}

/// Whether a failed statement shows that a pooler moved it between server sessions (a named
/// statement missing, already there, or with other parameters).
pub fn pooler_symptom(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => matches!(db.code().as_deref(), Some("26000" | "42P05" | "08P01")),
        _ => false,
    }
}

/// A statement whose `$n` placeholders are replaced by escaped literals (see the module docs).
#[must_use]
pub struct Stmt {
    sql: &'static str,
    args: Vec<String>,
    bad: bool,
}

/// Starts a [`Stmt`]; bind values in placeholder order.
pub fn stmt(sql: &'static str) -> Stmt {
    Stmt {
        sql,
        args: Vec::new(),
        bad: false,
    }
}

/// A text literal that means the same whatever `standard_conforming_strings` is.
fn text_literal(out: &mut String, s: &str) -> bool {
    out.push_str("E'");
    for c in s.chars() {
        match c {
            '\0' => return false, // Postgres text cannot hold NUL
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('\'');
    true
}

impl Stmt {
    fn push(mut self, literal: String) -> Self {
        self.args.push(literal);
        self
    }

    /// A `text` value (`NULL` for `None`).
    pub fn text<'a>(mut self, v: impl Into<Option<&'a str>>) -> Self {
        let mut lit = String::new();
        match v.into() {
            Some(s) => {
                self.bad |= !text_literal(&mut lit, s);
                lit.push_str("::text");
            }
            None => lit.push_str("NULL::text"),
        }
        self.push(lit)
    }

    /// A `text[]` value.
    pub fn texts<S: AsRef<str>>(mut self, v: &[S]) -> Self {
        let mut lit = String::from("ARRAY[");
        for (i, s) in v.iter().enumerate() {
            if i > 0 {
                lit.push(',');
            }
            self.bad |= !text_literal(&mut lit, s.as_ref());
        }
        lit.push_str("]::text[]");
        self.push(lit)
    }

    /// A `text[]` value, or `NULL`.
    pub fn texts_or_null<S: AsRef<str>>(self, v: Option<&[S]>) -> Self {
        match v {
            Some(v) => self.texts(v),
            None => self.push("NULL::text[]".into()),
        }
    }

    /// An `int4` value (`NULL` for `None`).
    pub fn int(self, v: impl Into<Option<i32>>) -> Self {
        match v.into() {
            Some(n) => self.push(format!("({n})::int4")),
            None => self.push("NULL::int4".into()),
        }
    }

    /// An `int8` value.
    pub fn bigint(self, v: i64) -> Self {
        self.push(format!("({v})::int8"))
    }

    /// An `int4[]` value.
    pub fn ints(self, v: &[i32]) -> Self {
        self.numbers(v, "int4")
    }

    /// An `int8[]` value.
    pub fn bigints(self, v: &[i64]) -> Self {
        self.numbers(v, "int8")
    }

    fn numbers(self, v: &[impl std::fmt::Display], ty: &str) -> Self {
        let mut lit = String::from("ARRAY[");
        for (i, n) in v.iter().enumerate() {
            if i > 0 {
                lit.push(',');
            }
            let _ = write!(lit, "{n}");
        }
        let _ = write!(lit, "]::{ty}[]");
        self.push(lit)
    }

    /// A `bool` value.
    pub fn bool(self, v: bool) -> Self {
        self.push(if v { "true".into() } else { "false".into() })
    }

    /// A `timestamp` (without time zone, UTC by convention) value, or `NULL`.
    pub fn ts(self, v: impl Into<Option<NaiveDateTime>>) -> Self {
        match v.into() {
            Some(t) => self.push(format!("'{}'::timestamp", t.format("%Y-%m-%d %H:%M:%S%.6f"))),
            None => self.push("NULL::timestamp".into()),
        }
    }

    /// A `jsonb` value.
    pub fn json(mut self, v: &Value) -> Self {
        let mut lit = String::new();
        self.bad |= !text_literal(&mut lit, &v.to_string());
        lit.push_str("::jsonb");
        self.push(lit)
    }

    /// The statement with its literals in place.
    pub fn render(&self) -> Result<String> {
        if self.bad {
            return Err(Error::invalid("a value contains a NUL character"));
        }
        let mut out = String::with_capacity(self.sql.len() + self.args.iter().map(String::len).sum::<usize>());
        let bytes = self.sql.as_bytes();
        let mut i = 0;
        let mut copied = 0;
        while i < bytes.len() {
            if bytes[i] == b'$' && i + 1 < bytes.len() && bytes[i + 1].is_ascii_digit() {
                let mut j = i + 1;
                while j < bytes.len() && bytes[j].is_ascii_digit() {
                    j += 1;
                }
                let n: usize = self.sql[i + 1..j].parse().unwrap_or(0);
                let arg = n
                    .checked_sub(1)
                    .and_then(|k| self.args.get(k))
                    .ok_or_else(|| Error::Database(format!("statement placeholder ${n} has no value")))?;
                out.push_str(&self.sql[copied..i]);
                out.push_str(arg);
                copied = j;
                i = j;
            } else {
                i += 1;
            }
        }
        out.push_str(&self.sql[copied..]);
        Ok(out)
    }

    /// Runs the statement; the rows it returns.
    pub async fn fetch_all<'e>(self, ex: impl Executor<'e, Database = Postgres>) -> Result<Vec<PgRow>> {
        let sql = self.render()?;
        Ok(sqlx::raw_sql(AssertSqlSafe(sql)).fetch_all(ex).await?)
    }

    /// Runs the statement; its first row, if any.
    pub async fn fetch_optional<'e>(self, ex: impl Executor<'e, Database = Postgres>) -> Result<Option<PgRow>> {
        let sql = self.render()?;
        Ok(sqlx::raw_sql(AssertSqlSafe(sql)).fetch_optional(ex).await?)
    }

    /// Runs the statement; rows of `T`.
    pub async fn fetch_as<'e, T>(self, ex: impl Executor<'e, Database = Postgres>) -> Result<Vec<T>>
    where
        T: for<'r> FromRow<'r, PgRow>,
    {
        let rows = self.fetch_all(ex).await?;
        rows.iter().map(|r| T::from_row(r).map_err(Error::from)).collect()
    }

    /// Runs the statement; the first column of its first row.
    pub async fn scalar<'e, T>(self, ex: impl Executor<'e, Database = Postgres>) -> Result<Option<T>>
    where
        T: for<'r> sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>,
    {
        match self.fetch_optional(ex).await? {
            Some(r) => Ok(Some(r.try_get(0)?)),
            None => Ok(None),
        }
    }

    /// Runs the statement; the number of rows it changed.
    pub async fn execute<'e>(self, ex: impl Executor<'e, Database = Postgres>) -> Result<u64> {
        let sql = self.render()?;
        Ok(sqlx::raw_sql(AssertSqlSafe(sql)).execute(ex).await?.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_escaped_and_placed() {
        let t = chrono::NaiveDate::from_ymd_opt(2026, 5, 1)
            .unwrap()
            .and_hms_milli_opt(8, 30, 0, 250)
            .unwrap();
        let s = stmt("SELECT $1, $2, $10, $3, $4, $5, $6, $7, $8, $9, '$x'")
            .text("it's a \\ test")
            .texts(&["a", "b'c"])
            .int(None)
            .ts(t)
            .bool(true)
            .ints(&[1, -2])
            .json(&serde_json::json!({"k": "v'"}))
            .bigint(-5)
            .text(None)
            .int(7)
            .render()
            .unwrap();
        assert_eq!(
            s,
            "SELECT E'it''s a \\\\ test'::text, ARRAY[E'a',E'b''c']::text[], (7)::int4, NULL::int4, \
             '2026-05-01 08:30:00.250000'::timestamp, true, ARRAY[1,-2]::int4[], E'{\"k\":\"v''\"}'::jsonb, \
             (-5)::int8, NULL::text, '$x'"
        );
    }

    #[test]
    fn nul_and_missing_values_are_errors() {
        assert!(stmt("SELECT $1").text("a\0b").render().is_err());
        assert!(stmt("SELECT $1").texts(&["\0"]).render().is_err());
        assert!(stmt("SELECT $2").text("a").render().is_err());
    }

    /// Every statement in `src/` goes through this module: a plain `sqlx::query` would be a named
    /// prepared statement, which breaks behind a transaction-mode pooler.
    #[test]
    fn no_statement_bypasses_this_module() {
        fn walk(dir: &std::path::Path, hits: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, hits);
                } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("db/sql.rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    for needle in ["sqlx::query(", "sqlx::query_as(", "sqlx::query_scalar("] {
                        if text.contains(needle) {
                            hits.push(format!("{}: {needle}", path.display()));
                        }
                    }
                }
            }
        }
        let mut hits = Vec::new();
        walk(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut hits);
        assert!(hits.is_empty(), "statements outside db::sql: {hits:?}");
    }
}
