//! `Credential` rows: the OAuth key JSON, refreshed tokens written back, dead credentials marked.

use serde_json::Value;
use sqlx::{PgPool, Row};

use crate::error::Result;

/// A credential as calsync needs it.
#[derive(Debug, Clone)]
pub struct Credential {
    pub id: i32,
    pub kind: String,
    pub key: Value,
    pub invalid: bool,
}

/// Loads a credential by id.
pub async fn load(pool: &PgPool, id: i32) -> Result<Option<Credential>> {
    let row =
        sqlx::query(r#"SELECT id, type, key, COALESCE(invalid, false) AS invalid FROM "Credential" WHERE id = $1"#)
            .bind(id)
            .fetch_optional(pool)
            .await?;
    Ok(match row {
        Some(r) => Some(Credential {
            id: r.try_get("id")?,
            kind: r.try_get("type")?,
            key: r.try_get("key")?,
            invalid: r.try_get("invalid")?,
        }),
        None => None,
    })
}

/// Merges `patch` into `Credential.key`, keeping every other field.
pub async fn merge_key(pool: &PgPool, id: i32, patch: &Value) -> Result<()> {
    sqlx::query(r#"UPDATE "Credential" SET key = key || $2::jsonb WHERE id = $1"#)
        .bind(id)
        .bind(patch)
        .execute(pool)
        .await?;
    Ok(())
}

/// Marks a credential invalid (its refresh token was refused). Returns whether this call changed it.
pub async fn mark_invalid(pool: &PgPool, id: i32) -> Result<bool> {
    let done = sqlx::query(r#"UPDATE "Credential" SET invalid = true WHERE id = $1 AND invalid IS NOT TRUE"#)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() > 0)
}
