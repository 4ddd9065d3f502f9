//! Provider clients: HTTP with retries, wire types, and the mapping of provider events to cache
//! rows. Providers never touch the database.

pub mod google;
pub mod http;
pub mod microsoft;

pub use crate::error::ProviderError;

/// The integrations calsync syncs (`SelectedCalendar.integration`).
pub const INTEGRATIONS: &[&str] = &["google_calendar", "office365_calendar"];

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
