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
}

impl From<ProviderError> for Error {
    fn from(e: ProviderError) -> Self {
        match e {
            ProviderError::InvalidGrant | ProviderError::Unauthorized => Error::ProviderAuth(e.to_string()),
            ProviderError::NotFound => Error::NotFound(e.to_string()),
            ProviderError::Config(m) => Error::InvalidArgument(m),
            other => Error::ProviderUnavailable(other.to_string()),
        }
    }
}
