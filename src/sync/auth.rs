//! Access tokens from `Credential.key`: reused while fresh, refreshed when `expiry_date` is near and
//! written back (merged). A refused refresh token (`invalid_grant`) marks the credential invalid;
//! later syncs then fail at once, without calling the provider again.

use serde_json::{json, Value};
use sqlx::PgPool;

use crate::db::credentials;
use crate::error::{Error, Result};
use crate::providers::google::GoogleClient;
use crate::providers::ProviderError;

/// Refresh this long before the stored expiry.
const EARLY_MS: i64 = 5 * 60 * 1000;

/// A number stored as a JSON number or string.
fn as_i64(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A Google access token for credential `id`; `force` refreshes even when the stored one looks fresh.
pub async fn google_access_token(pool: &PgPool, google: &GoogleClient, id: i32, force: bool) -> Result<String> {
    let cred = credentials::load(pool, id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("credential {id} does not exist")))?;
    if cred.invalid {
        return Err(Error::ProviderAuth(format!(
            "credential {id} is marked invalid; the user must reconnect the calendar"
        )));
    }
    let now_ms = chrono::Utc::now().timestamp_millis();
    let access = cred.key.get("access_token").and_then(Value::as_str);
    // Google keys keep expiry_date in epoch milliseconds.
    let expiry = as_i64(cred.key.get("expiry_date"));
    if let (false, Some(token), Some(exp)) = (force, access, expiry) {
        if exp - EARLY_MS > now_ms {
            return Ok(token.to_string());
        }
    }
    let Some(refresh) = cred.key.get("refresh_token").and_then(Value::as_str) else {
        credentials::mark_invalid(pool, id).await?;
        return Err(Error::ProviderAuth(format!("credential {id} has no refresh token")));
    };
    match google.refresh(refresh).await {
        Ok(tok) => {
            let mut patch = json!({
                "access_token": tok.access_token,
                "expiry_date": now_ms + tok.expires_in.unwrap_or(3600) * 1000,
            });
            if let Some(s) = tok.scope {
                patch["scope"] = json!(s);
            }
            if let Some(t) = tok.token_type {
                patch["token_type"] = json!(t);
            }
            if let Some(rt) = tok.refresh_token {
                patch["refresh_token"] = json!(rt);
            }
            credentials::merge_key(pool, id, &patch).await?;
            Ok(tok.access_token)
        }
        Err(ProviderError::InvalidGrant) => {
            if credentials::mark_invalid(pool, id).await? {
                tracing::warn!(
                    credential_id = id,
                    "refresh token refused (invalid_grant); credential marked invalid"
                );
            }
            Err(ProviderError::InvalidGrant.into())
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_as_number_or_string() {
        assert_eq!(as_i64(Some(&json!(1700000000000_i64))), Some(1_700_000_000_000));
        assert_eq!(as_i64(Some(&json!("1700000000000"))), Some(1_700_000_000_000));
        assert_eq!(as_i64(Some(&json!(1.7e12))), Some(1_700_000_000_000));
        assert_eq!(as_i64(Some(&json!(null))), None);
        assert_eq!(as_i64(None), None);
    }
}
