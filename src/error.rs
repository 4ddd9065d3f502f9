//! One error type for the whole library and its mapping to the stable string codes JS sees.

/// Every failure calsync reports. Messages never contain secrets, tokens or connection strings.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database could not be reached (refused, timed out, TLS or authentication failure).
    #[error("database unavailable: {0}")]
    DbUnavailable(String),
    /// Tables or columns calsync needs are missing.
    #[error("schema mismatch: missing {}", .0.join(", "))]
    SchemaMismatch(Vec<String>),
    /// The caller passed something calsync cannot use.
    #[error("{0}")]
    InvalidArgument(String),
    /// A referenced row does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The provider refused the stored credentials.
    #[error("provider rejected the credentials: {0}")]
    ProviderAuth(String),
    /// The provider refused calsync's own OAuth client: a configuration error, not the user's.
    #[error("provider configuration: {0}")]
    ProviderConfig(String),
    /// The provider could not be reached or kept failing.
    #[error("provider unavailable: {0}")]
    ProviderUnavailable(String),
    /// The instance was closed with `close()`.
    #[error("this CalendarSync instance is closed")]
    Closed,
    /// Any other database error (constraint, syntax, serialization ...).
    #[error("database error: {0}")]
    Database(String),
}

/// Shorthand used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The stable code JS callers match on (`err.code`).
    pub fn code(&self) -> &'static str {
        match self {
            Error::DbUnavailable(_) => "DB_UNAVAILABLE",
            Error::SchemaMismatch(_) => "SCHEMA_MISMATCH",
            Error::InvalidArgument(_) => "INVALID_ARGUMENT",
            Error::NotFound(_) => "NOT_FOUND",
            Error::ProviderAuth(_) => "PROVIDER_AUTH",
            Error::ProviderConfig(_) => "PROVIDER_CONFIG",
            Error::ProviderUnavailable(_) => "PROVIDER_UNAVAILABLE",
            Error::Closed => "CLOSED",
            Error::Database(_) => "DB_ERROR",
        }
    }

    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidArgument(msg.into())
    }
}

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

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        use sqlx::Error as E;
        match e {
            // Connection-level failures: the server is not there or refuses us.
            E::PoolTimedOut => Error::DbUnavailable("timed out waiting for a connection".into()),
            E::PoolClosed => Error::Closed,
            E::Io(io) => Error::DbUnavailable(io.kind().to_string()),
            E::Tls(_) => Error::DbUnavailable("TLS handshake failed".into()),
            // sqlx's configuration errors can quote the URL; say only what kind of problem it is.
            E::Configuration(_) => Error::invalid("the database URL is not valid"),
            E::Database(db) => {
                // Class 08 = connection exception, 28 = invalid authorization, 3D000 = no such database,
                // 57P0x = server shutting down: all mean "cannot use this database now".
                let code = db.code().map(|c| c.to_string()).unwrap_or_default();
                if code.starts_with("08") || code.starts_with("28") || code == "3D000" || code.starts_with("57P0") {
                    Error::DbUnavailable(db.message().to_string())
                } else {
                    Error::Database(db.message().to_string())
                }
            }
            other => Error::Database(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable() {
        assert_eq!(Error::SchemaMismatch(vec!["a.b".into()]).code(), "SCHEMA_MISMATCH");
        assert_eq!(Error::Closed.code(), "CLOSED");
        assert_eq!(Error::invalid("x").code(), "INVALID_ARGUMENT");
        assert_eq!(
            Error::SchemaMismatch(vec!["\"A\".\"b\"".into(), "\"C\"".into()]).to_string(),
            "schema mismatch: missing \"A\".\"b\", \"C\""
        );
    }

    #[test]
    fn pool_timeout_is_unavailable() {
        assert_eq!(Error::from(sqlx::Error::PoolTimedOut).code(), "DB_UNAVAILABLE");
    }
}
