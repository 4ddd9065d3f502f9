//! Provider clients: HTTP with retries, wire types, and the mapping of provider events to cache
//! rows. Providers never touch the database.

pub mod google;
pub mod http;
pub mod microsoft;

use crate::error::Error;

/// What can go wrong talking to a provider, after retries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The refresh token was revoked or expired (`invalid_grant`): the credential is dead.
    #[error("the provider refused the refresh token (invalid_grant)")]
    InvalidGrant,
    /// The access token was refused even after a refresh.
    #[error("the provider refused the access token")]
    Unauthorized,
    /// The sync token / delta link is no longer valid: a full sync is needed.
    #[error("the sync token is no longer valid")]
    SyncTokenInvalid,
    /// The calendar, channel or subscription does not exist.
    #[error("not found at the provider")]
    NotFound,
    /// A 4xx the request cannot recover from by retrying.
    #[error("the provider rejected the request: HTTP {status} {reason}")]
    Rejected { status: u16, reason: String },
    /// 429/5xx/timeouts that outlasted the retries.
    #[error("the provider is unavailable: {reason}")]
    Unavailable { reason: String },
    /// A response calsync could not read.
    #[error("unexpected provider response: {0}")]
    Decode(String),
    /// Missing configuration (client id, webhook URL, ...).
    #[error("{0}")]
    Config(String),
    /// The token endpoint refused calsync's OAuth client (`invalid_client`, `unauthorized_client`):
    /// calsync is misconfigured; no user's grant is in question.
    #[error("the provider refused calsync's OAuth client ({0}); check the client id and secret")]
    ClientRejected(String),
}

impl ProviderError {
    /// A short fixed name of the failure, for metrics labels.
    pub fn label(&self) -> &'static str {
        match self {
            ProviderError::InvalidGrant => "invalid_grant",
            ProviderError::Unauthorized => "unauthorized",
            ProviderError::SyncTokenInvalid => "sync_token_invalid",
            ProviderError::NotFound => "not_found",
            ProviderError::Rejected { .. } => "rejected",
            ProviderError::Unavailable { .. } => "unavailable",
            ProviderError::Decode(_) => "decode",
            ProviderError::Config(_) => "config",
            ProviderError::ClientRejected(_) => "client_rejected",
        }
    }
}

/// Counts a token refresh's outcome and passes it on.
pub fn count_refresh<T>(
    metrics: &crate::metrics::Metrics,
    provider: &'static str,
    result: Result<T, ProviderError>,
) -> Result<T, ProviderError> {
    let outcome = result.as_ref().map_or_else(|e| e.label(), |_| "ok");
    crate::metrics::Metrics::inc(&metrics.refreshes, &[provider, outcome]);
    result
}

/// A client-level refusal pauses every token request to that provider for this long: a
/// misconfiguration is reported once per pause, and nothing spins while it lasts.
pub const CLIENT_PAUSE: std::time::Duration = std::time::Duration::from_secs(300);

/// Remembers a client-level refusal of a provider's token endpoint (see [`CLIENT_PAUSE`]).
/// Clones share the pause.
#[derive(Debug, Default, Clone)]
pub struct ClientPause(std::sync::Arc<std::sync::Mutex<Option<(std::time::Instant, String)>>>);

impl ClientPause {
    /// The refusal still in force, if any.
    pub fn active(&self) -> Option<ProviderError> {
        let guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match &*guard {
            Some((until, reason)) if std::time::Instant::now() < *until => {
                Some(ProviderError::ClientRejected(reason.clone()))
            }
            _ => None,
        }
    }

    /// Records a refusal; logs it when it starts a pause (once per pause, not once per calendar).
    pub fn refused(&self, provider: &str, reason: &str) -> ProviderError {
        let mut guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let now = std::time::Instant::now();
        if guard.as_ref().is_none_or(|(until, _)| now >= *until) {
            tracing::error!(
                provider,
                code = "PROVIDER_CONFIG",
                reason,
                "the token endpoint refused calsync's OAuth client: check its configuration; token requests pause for 5 minutes"
            );
        }
        *guard = Some((now + CLIENT_PAUSE, reason.to_string()));
        ProviderError::ClientRejected(reason.to_string())
    }
}

impl From<ProviderError> for Error {
    fn from(e: ProviderError) -> Self {
        match e {
            ProviderError::InvalidGrant | ProviderError::Unauthorized => Error::ProviderAuth(e.to_string()),
            ProviderError::NotFound => Error::NotFound(e.to_string()),
            ProviderError::Config(m) => Error::InvalidArgument(m),
            ProviderError::ClientRejected(_) => Error::ProviderConfig(e.to_string()),
            other => Error::ProviderUnavailable(other.to_string()),
        }
    }
}
