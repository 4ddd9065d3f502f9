//! Access tokens through an organisation's `DelegationCredential` (SPEC §2, §5): Google Workspace
//! domain-wide delegation (the service account acting as the calendar's user, by email), or a
//! Microsoft tenant's app (client credentials; Graph requests then name the user). Tokens live in
//! this process's memory only, per delegation credential (and user, for Google), and are never
//! written to Cal.com's tables. The credential row is read on every use, so turning `enabled` off stops its
//! calendars at once: syncs fail with `PROVIDER_AUTH`, reads report `credential_invalid`, and the
//! next renewal pass unsubscribes them.

use std::collections::HashMap;
use std::sync::Mutex;

use sqlx::Row;

use super::Engine;
use crate::db::calendars::Group;
use crate::db::sql::stmt;
use crate::error::{Error, Result};
use crate::providers::ProviderError;

/// A token is used until this long before it expires.
const EARLY_MS: i64 = 5 * 60 * 1000;

/// Delegated access tokens by (delegation credential id, user email or "" for a tenant-wide app
/// token): (token, expiry in epoch ms).
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

/// An access token for `group`'s calendar through delegation credential `id`: Google Workspace
/// acting as the user, or a Microsoft tenant's app-only token (Graph requests then name the user,
/// see `Group::acting_for`). `rejected` names a token the provider just refused (a new one is
/// requested).
pub async fn access_token(engine: &Engine, id: &str, group: &Group, rejected: Option<&str>) -> Result<String> {
    let row = stmt(
        r#"SELECT dc.enabled, dc."serviceAccountKey"::text AS key, wp.slug
           FROM "DelegationCredential" dc JOIN "WorkspacePlatform" wp ON wp.id = dc."workspacePlatformId"
           WHERE dc.id = $1"#,
    )
    .text(id)
    .fetch_optional(&engine.pool)
    .await?
    .ok_or_else(|| Error::NotFound(format!("delegation credential {id} does not exist")))?;
    let unusable = |why: &str| Error::ProviderAuth(format!("delegation credential {id} {why}"));
    if !row.try_get::<bool, _>("enabled")? {
        return Err(unusable("is disabled"));
    }
    let platform: String = row.try_get("slug")?;
    let provider = engine.provider(&group.integration)?;
    let expected = provider.delegation_platform();
    if platform != expected {
        return Err(unusable(&format!(
            "belongs to workspace platform '{platform}', not to {}'s ('{expected}')",
            group.integration
        )));
    }
    let subject = provider.delegation_subject(&group.user_email);
    let now_ms = crate::time::now_utc().timestamp_millis();
    let cache_key = (id.to_string(), subject.clone());
    if let Some(token) = engine.delegated.get(&cache_key, rejected, now_ms) {
        return Ok(token);
    }
    let key: serde_json::Value = serde_json::from_str(&row.try_get::<String, _>("key")?).unwrap_or_default();
    let fetched = provider.delegated_token(&key, &subject).await;
    let token = match fetched {
        Ok(t) => t,
        Err(ProviderError::InvalidGrant) => {
            return Err(unusable(
                "was refused (invalid_grant): the user is not in the Workspace domain, or the key is revoked",
            ))
        }
        Err(ProviderError::Rejected {
            status: 400..=499,
            reason,
        }) => {
            return Err(unusable(&format!(
                "is not authorized ({reason}): check the delegation (Google: domain-wide delegation of the calendar \
                 scope; Microsoft: the app, its secret and the tenant)"
            )))
        }
        Err(ProviderError::Config(why)) => return Err(unusable(&why)),
        Err(e) => return Err(e.into()),
    };
    let exp = now_ms + token.expires_in.unwrap_or(3600) * 1000;
    engine.delegated.put(cache_key, token.access_token.clone(), exp);
    Ok(token.access_token)
}
