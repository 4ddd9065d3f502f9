//! Access tokens through an organisation's `DelegationCredential` (SPEC §2, §5): Google Workspace
//! domain-wide delegation, the service account acting as the calendar's user (by email). Tokens
//! live in this process's memory only, per (delegation credential, user), and are never written to
//! Cal.com's tables. The credential row is read on every use, so turning `enabled` off stops its
//! calendars at once: syncs fail with `PROVIDER_AUTH`, reads report `credential_invalid`, and the
//! next renewal pass unsubscribes them.

use std::collections::HashMap;
use std::sync::Mutex;

use sqlx::Row;

use crate::db::sql::stmt;
use crate::error::{Error, Result};
use crate::providers::google::GoogleClient;
use crate::providers::ProviderError;

/// A token is used until this long before it expires.
const EARLY_MS: i64 = 5 * 60 * 1000;

/// Delegated access tokens by (delegation credential id, user email): (token, expiry in epoch ms).
#[derive(Default)]
pub struct DelegatedTokens(Mutex<HashMap<(String, String), (String, i64)>>);

impl DelegatedTokens {
    fn get(&self, key: &(String, String), rejected: Option<&str>, now_ms: i64) -> Option<String> {
        let cache = self.0.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(key)
            .filter(|(token, exp)| exp - EARLY_MS > now_ms && Some(token.as_str()) != rejected)
            .map(|(token, _)| token.clone())
    }

    fn put(&self, key: (String, String), token: String, exp_ms: i64) {
        let mut cache = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= 100_000 {
            cache.clear(); // it only saves token requests
        }
        cache.insert(key, (token, exp_ms));
    }
}

/// An access token for user `user_id`'s calendars through delegation credential `id`; `rejected`
/// names a token the provider just refused (a new one is requested).
pub async fn access_token(
    pool: &sqlx::PgPool,
    google: &GoogleClient,
    tokens: &DelegatedTokens,
    id: &str,
    user_id: i32,
    rejected: Option<&str>,
) -> Result<String> {
    let row = stmt(
        r#"SELECT dc.enabled, dc."serviceAccountKey"::text AS key, wp.slug, u.email
           FROM "DelegationCredential" dc
           JOIN "WorkspacePlatform" wp ON wp.id = dc."workspacePlatformId"
           CROSS JOIN users u
           WHERE dc.id = $1 AND u.id = $2"#,
    )
    .text(id)
    .int(user_id)
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| Error::NotFound(format!("delegation credential {id} or user {user_id} does not exist")))?;
    let unusable = |why: &str| Error::ProviderAuth(format!("delegation credential {id} {why}"));
    if !row.try_get::<bool, _>("enabled")? {
        return Err(unusable("is disabled"));
    }
    let platform: String = row.try_get("slug")?;
    if platform != "google" {
        return Err(unusable(&format!(
            "belongs to workspace platform '{platform}'; calsync supports Google Workspace delegation only"
        )));
    }
    let email: String = row.try_get("email")?;
    let now_ms = crate::time::now_utc().timestamp_millis();
    let cache_key = (id.to_string(), email.to_lowercase());
    if let Some(token) = tokens.get(&cache_key, rejected, now_ms) {
        return Ok(token);
    }
    let key: serde_json::Value = serde_json::from_str(&row.try_get::<String, _>("key")?).unwrap_or_default();
    let field = |name: &str| key.get(name).and_then(|v| v.as_str()).filter(|v| !v.is_empty());
    let (Some(client_email), Some(private_key)) = (field("client_email"), field("private_key")) else {
        return Err(unusable("has no client_email and private_key in serviceAccountKey"));
    };
    let token = match google.delegated_token(client_email, private_key, &email).await {
        Ok(t) => t,
        Err(ProviderError::InvalidGrant) => {
            return Err(unusable(
                "was refused (invalid_grant): the user is not in the Workspace domain, or the key is revoked",
            ))
        }
        Err(ProviderError::Rejected { status: 401 | 403, .. }) => {
            return Err(unusable(
                "is not authorized for domain-wide delegation of the calendar scope in the Workspace admin console",
            ))
        }
        Err(ProviderError::Config(why)) => return Err(unusable(&why)),
        Err(e) => return Err(e.into()),
    };
    let exp = now_ms + token.expires_in.unwrap_or(3600) * 1000;
    tokens.put(cache_key, token.access_token.clone(), exp);
    Ok(token.access_token)
}
