//! Access tokens from `Credential.key`: reused while fresh, refreshed when `expiry_date` is near and
//! merged back into the key. Refreshes of one credential are serialized across processes by a row
//! lock, so Microsoft's rotating refresh tokens are never spent twice. A refused refresh token
//! (`invalid_grant`) marks the credential invalid; later calls then fail at once, without calling
//! the provider again.

use serde_json::{json, Value};
use sqlx::PgPool;

use crate::db::credentials;
use crate::error::{Error, Result};
use crate::providers::google::wire::Token;
use crate::providers::google::GoogleClient;
use crate::providers::microsoft::MicrosoftClient;
use crate::providers::ProviderError;

/// Refresh this long before the stored expiry.
const EARLY_MS: i64 = 5 * 60 * 1000;

/// Which provider's token endpoint and key conventions to use.
#[derive(Clone, Copy)]
pub enum TokenSource<'a> {
    /// `expiry_date` in epoch milliseconds.
    Google(&'a GoogleClient),
    /// `expiry_date` in epoch seconds; refresh tokens rotate.
    Microsoft(&'a MicrosoftClient),
}

impl TokenSource<'_> {
    fn expiry_ms(&self, key: &Value) -> Option<i64> {
        let v = as_i64(key.get("expiry_date"))?;
        Some(match self {
            TokenSource::Google(_) => v,
            TokenSource::Microsoft(_) => v * 1000,
        })
    }

    fn expiry_value(&self, at_ms: i64) -> Value {
        match self {
            TokenSource::Google(_) => json!(at_ms),
            TokenSource::Microsoft(_) => json!(at_ms / 1000),
        }
    }

    async fn refresh(&self, refresh_token: &str) -> Result<Token, ProviderError> {
        match self {
            TokenSource::Google(g) => g.refresh(refresh_token).await,
            TokenSource::Microsoft(m) => m.refresh(refresh_token).await,
        }
    }
}

/// A number stored as a JSON number or string.
fn as_i64(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn fresh_token(source: &TokenSource<'_>, key: &Value, now_ms: i64) -> Option<String> {
    let token = key.get("access_token").and_then(Value::as_str)?;
    let exp = source.expiry_ms(key)?;
    (exp - EARLY_MS > now_ms).then(|| token.to_string())
}

/// An access token for credential `id`. `rejected` names a token the provider just refused: a
/// different stored token is used as is (another process refreshed), the same one is refreshed.
pub async fn access_token(pool: &PgPool, source: TokenSource<'_>, id: i32, rejected: Option<&str>) -> Result<String> {
    let dead = || {
        Error::ProviderAuth(format!(
            "credential {id} is marked invalid; the user must reconnect the calendar"
        ))
    };
    let cred = credentials::load(pool, id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("credential {id} does not exist")))?;
    if cred.invalid {
        return Err(dead());
    }
    let now_ms = chrono::Utc::now().timestamp_millis();
    if rejected.is_none() {
        if let Some(t) = fresh_token(&source, &cred.key, now_ms) {
            return Ok(t);
        }
    }
    // Refresh under the credential's row lock; re-read first, another process may have done it.
    let mut tx = pool.begin().await?;
    let cred = credentials::lock(&mut tx, id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("credential {id} does not exist")))?;
    if cred.invalid {
        return Err(dead());
    }
    let current = cred.key.get("access_token").and_then(Value::as_str);
    match rejected {
        Some(bad) if current.is_some_and(|c| c != bad) => return Ok(current.unwrap_or_default().to_string()),
        None => {
            if let Some(t) = fresh_token(&source, &cred.key, now_ms) {
                return Ok(t);
            }
        }
        _ => {}
    }
    let Some(refresh) = cred.key.get("refresh_token").and_then(Value::as_str) else {
        credentials::mark_invalid(&mut tx, id).await?;
        tx.commit().await?;
        return Err(Error::ProviderAuth(format!("credential {id} has no refresh token")));
    };
    match source.refresh(refresh).await {
        Ok(tok) => {
            let mut patch = json!({
                "access_token": tok.access_token,
                "expiry_date": source.expiry_value(now_ms + tok.expires_in.unwrap_or(3600) * 1000),
            });
            for (k, v) in [
                ("scope", tok.scope),
                ("token_type", tok.token_type),
                ("refresh_token", tok.refresh_token),
            ] {
                if let Some(v) = v {
                    patch[k] = json!(v);
                }
            }
            credentials::merge_key(&mut tx, id, &patch).await?;
            tx.commit().await?;
            Ok(tok.access_token)
        }
        Err(ProviderError::InvalidGrant) => {
            credentials::mark_invalid(&mut tx, id).await?;
            tx.commit().await?;
            tracing::warn!(
                credential_id = id,
                "refresh token refused (invalid_grant); credential marked invalid"
            );
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
