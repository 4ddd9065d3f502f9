//! `Credential` rows: the OAuth key JSON, refreshed tokens written back, dead credentials marked.

use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};

use crate::error::Result;

/// A credential as calsync needs it.
#[derive(Debug, Clone)]
pub struct Credential {
    pub id: i32,
    pub key: Value,
    pub invalid: bool,
}

fn from_row(r: PgRow) -> Result<Credential> {
    Ok(Credential {
        id: r.try_get("id")?,
        key: r.try_get("key")?,
        invalid: r.try_get("invalid")?,
    })
}

/// Loads a credential by id.
pub async fn load(pool: &PgPool, id: i32) -> Result<Option<Credential>> {
    let row = sqlx::query(r#"SELECT id, key, COALESCE(invalid, false) AS invalid FROM "Credential" WHERE id = $1"#)
        .bind(id)
        .fetch_optional(pool)
        .await?;
    row.map(from_row).transpose()
}

/// Loads a credential and locks its row until the transaction ends (refreshes queue up behind it).
pub async fn lock(conn: &mut PgConnection, id: i32) -> Result<Option<Credential>> {
    let row = sqlx::query(
        r#"SELECT id, key, COALESCE(invalid, false) AS invalid FROM "Credential" WHERE id = $1 FOR UPDATE"#,
    )
    .bind(id)
    .fetch_optional(conn)
    .await?;
    row.map(from_row).transpose()
}

/// Merges `patch` into `Credential.key`, keeping every other field.
pub async fn merge_key(conn: &mut PgConnection, id: i32, patch: &Value) -> Result<()> {
    sqlx::query(r#"UPDATE "Credential" SET key = key || $2::jsonb WHERE id = $1"#)
        .bind(id)
        .bind(patch)
        .execute(conn)
        .await?;
    Ok(())
}

/// Marks a credential invalid (its refresh token was refused).
pub async fn mark_invalid(conn: &mut PgConnection, id: i32) -> Result<()> {
    sqlx::query(r#"UPDATE "Credential" SET invalid = true WHERE id = $1"#)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}
