//! Access tokens from `Credential.key`: reused while fresh, refreshed when `expiry_date` is near and
//! merged back into the key. No database lock is held during the token call (SPEC §6.8): refreshes
//! of one credential are serialized across processes by a claim (`refresh:<id>`), others wait for
//! its result by re-reading the key, and the write-back is a compare-and-swap on the refresh token
//! the refresh started from, so Microsoft's rotating refresh tokens are never spent twice. A refused
//! refresh token (`invalid_grant`) marks the credential invalid; later calls then fail at once,
//! without calling the provider again.

use std::time::Duration;

use serde_json::{json, Value};
use sqlx::PgPool;

use crate::db::{credentials, lease};
use crate::error::{Error, Result};
use crate::providers::{Provider, ProviderError};

/// Refresh this long before the stored expiry.
const EARLY_MS: i64 = 5 * 60 * 1000;

/// Which provider's token endpoint and key conventions to use.
pub type TokenSource<'a> = &'a dyn Provider;

/// The stored `expiry_date` in epoch milliseconds.
fn expiry_ms(source: TokenSource<'_>, key: &Value) -> Option<i64> {
    Some(as_i64(key.get("expiry_date"))? * source.expiry_unit_ms())
}

/// `at_ms` as the provider's `expiry_date` stores it.
fn expiry_value(source: TokenSource<'_>, at_ms: i64) -> Value {
    json!(at_ms / source.expiry_unit_ms())
}

/// A number stored as a JSON number or string.
fn as_i64(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn fresh_token(source: TokenSource<'_>, key: &Value, now_ms: i64) -> Option<String> {
    let token = key.get("access_token").and_then(Value::as_str)?;
    let exp = expiry_ms(source, key)?;
    (exp - EARLY_MS > now_ms).then(|| token.to_string())
}

/// An access token for credential `id`. `rejected` names a token the provider just refused: a
/// different stored token is used as is (another process refreshed), the same one is refreshed.
/// `claim` bounds how long one refresh may take before another process may try.
pub async fn access_token(
    pool: &PgPool,
    source: TokenSource<'_>,
    id: i32,
    rejected: Option<&str>,
    claim: Duration,
) -> Result<String> {
    let deadline = tokio::time::Instant::now() + claim + Duration::from_secs(5);
    let mut pause = Duration::from_millis(20);
    loop {
        let cred = credentials::load(pool, id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("credential {id} does not exist")))?;
        if cred.invalid {
            return Err(Error::ProviderAuth(format!(
                "credential {id} is marked invalid; the user must reconnect the calendar"
            )));
        }
        if let Some(access) = source.key_access(&cred.key) {
            return key_access(pool, id, access?, rejected).await;
        }
        if let Some(t) = usable(source, &cred.key, rejected) {
            return Ok(t);
        }
        if let Some(claimed) = lease::try_take(pool, &format!("refresh:{id}"), claim).await? {
            // Re-read under the claim: another process may have refreshed just before.
            let refreshed = match credentials::load(pool, id).await? {
                Some(c) if !c.invalid => match usable(source, &c.key, rejected) {
                    Some(t) => Ok(t),
                    None => refresh(pool, source, &c).await,
                },
                _ => Err(Error::ProviderAuth(format!("credential {id} is no longer usable"))),
            };
            claimed.release(pool).await;
            return refreshed;
        }
        // Another process is refreshing: wait for its result.
        if tokio::time::Instant::now() + pause > deadline {
            return Err(Error::ProviderUnavailable(format!(
                "a token refresh of credential {id} by another process did not finish"
            )));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// Access that the key itself holds (a password): the server refusing it marks the credential
/// invalid, as a refused refresh token does.
async fn key_access(pool: &PgPool, id: i32, access: String, rejected: Option<&str>) -> Result<String> {
    if rejected != Some(access.as_str()) {
        return Ok(access);
    }
    credentials::mark_invalid(pool, id, None).await?;
    tracing::warn!(
        credential_id = id,
        code = "PROVIDER_AUTH",
        "the server refused the stored password; credential marked invalid"
    );
    Err(Error::ProviderAuth(format!(
        "the server refused credential {id}'s password; the user must reconnect the calendar"
    )))
}

/// The stored access token, if it can be used: fresh, and not the one the provider just refused.
fn usable(source: TokenSource<'_>, key: &Value, rejected: Option<&str>) -> Option<String> {
    let now_ms = crate::time::now_utc().timestamp_millis();
    match rejected {
        None => fresh_token(source, key, now_ms),
        Some(bad) => key
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| *t != bad)
            .map(str::to_string),
    }
}

/// Calls the token endpoint (no database connection held) and writes the result back.
async fn refresh(pool: &PgPool, source: TokenSource<'_>, cred: &credentials::Credential) -> Result<String> {
    let id = cred.id;
    let Some(refresh_token) = cred.key.get("refresh_token").and_then(Value::as_str) else {
        credentials::mark_invalid(pool, id, None).await?;
        return Err(Error::ProviderAuth(format!("credential {id} has no refresh token")));
    };
    let now_ms = crate::time::now_utc().timestamp_millis();
    match source.refresh(refresh_token).await {
        Ok(tok) => {
            let mut patch = json!({
                "access_token": tok.access_token,
                "expiry_date": expiry_value(source, now_ms + tok.expires_in.unwrap_or(3600) * 1000),
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
            if !credentials::merge_key(pool, id, refresh_token, &patch).await? {
                // Our claim expired and another process refreshed meanwhile; its key stays.
                tracing::info!(
                    credential_id = id,
                    "a slow token refresh lost its claim; keeping the newer key"
                );
            }
            Ok(tok.access_token)
        }
        Err(ProviderError::InvalidGrant) => {
            credentials::mark_invalid(pool, id, Some(refresh_token)).await?;
            tracing::warn!(
                credential_id = id,
                code = "PROVIDER_AUTH",
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
