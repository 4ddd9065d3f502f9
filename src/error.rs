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
