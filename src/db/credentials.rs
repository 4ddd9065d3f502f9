//! `Credential` rows: the OAuth key JSON, refreshed tokens written back, dead credentials marked.
//! Writes are compare-and-swap on the refresh token the caller started from, so a refresh that
//! raced another process's never overwrites a newer (rotated) token.

use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};

use super::sql::stmt;
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
    let row = stmt(r#"SELECT id, key, COALESCE(invalid, false) AS invalid FROM "Credential" WHERE id = $1"#)
        .int(id)
        .fetch_optional(pool)
        .await?;
    row.map(from_row).transpose()
}

/// Merges `patch` into `Credential.key`, keeping every other field, if its refresh token is still
/// `refresh_token`. False when another process changed it first.
pub async fn merge_key(pool: &PgPool, id: i32, refresh_token: &str, patch: &Value) -> Result<bool> {
    let n = stmt(r#"UPDATE "Credential" SET key = key || $3 WHERE id = $1 AND key->>'refresh_token' = $2"#)
        .int(id)
        .text(refresh_token)
        .json(patch)
        .execute(pool)
        .await?;
    Ok(n == 1)
}

/// Marks a credential invalid (its refresh token was refused), if its refresh token is still
/// `refresh_token` (`None`: it had none).
pub async fn mark_invalid(pool: &PgPool, id: i32, refresh_token: Option<&str>) -> Result<bool> {
    let n = stmt(
        r#"UPDATE "Credential" SET invalid = true
           WHERE id = $1 AND (key->>'refresh_token') IS NOT DISTINCT FROM $2"#,
    )
    .int(id)
    .text(refresh_token)
    .execute(pool)
    .await?;
    Ok(n == 1)
}
