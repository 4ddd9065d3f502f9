//! Google Calendar v3: the API calls calsync makes and the mapping of events to cache rows.

pub mod channel;
pub mod map;
pub mod provider;
pub mod wire;

pub use provider::{provider, INTEGRATION};

use reqwest::{Method, StatusCode, Url};

use super::http::{api_url, classify, decode, rejected, Http, OAuthClient};
use super::ProviderError;
use crate::config::GoogleConfig;
use wire::{error_reason, Channel, EventsPage, Token};

/// The OAuth scope delegated tokens ask for (what a Workspace admin grants Cal.com's service
/// account for domain-wide delegation).
pub const DELEGATION_SCOPE: &str = "https://www.googleapis.com/auth/calendar";
/// RFC 7523's JWT bearer grant type.
const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// What one `events.list` request asks for.
#[derive(Debug, Clone)]
pub enum ListQuery<'a> {
    /// A full sync of `[time_min, time_max)` (RFC 3339).
    Full { time_min: &'a str, time_max: &'a str },
    /// Changes since `sync_token`.
    Incremental { sync_token: &'a str },
}

/// Google Calendar API client over the shared HTTP client.
#[derive(Clone)]
pub struct GoogleClient {
    http: Http,
    cfg: GoogleConfig,
    client_pause: super::ClientPause,
}

impl GoogleClient {
    /// A client for the configured endpoints.
    pub fn new(http: Http, cfg: GoogleConfig) -> Self {
        GoogleClient {
            http,
            cfg,
            client_pause: Default::default(),
        }
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &GoogleConfig {
        &self.cfg
    }

    fn url(&self, segments: &[&str]) -> Result<Url, ProviderError> {
        api_url(&self.cfg.api_url, segments)
    }

    /// Exchanges a refresh token for a new access token. `invalid_grant` means the credential is dead.
    pub async fn refresh(&self, refresh_token: &str) -> Result<Token, ProviderError> {
        super::count_refresh(self.http.metrics(), "google", self.refresh_once(refresh_token).await)
    }

    async fn refresh_once(&self, refresh_token: &str) -> Result<Token, ProviderError> {
        if let Some(paused) = self.client_pause.active() {
            return Err(paused);
        }
        let client = OAuthClient {
            id: self.cfg.client_id.as_deref(),
            secret: self.cfg.client_secret.as_ref(),
            unconfigured: "Google OAuth client id/secret are not configured (GOOGLE_API_CREDENTIALS)",
        };
        let reply = self
            .http
            .refresh_grant("google.token", &self.cfg.token_url, &client, refresh_token, None)
            .await?;
        if reply.status.is_success() {
            return decode(&reply);
        }
        match error_reason(&reply.body).as_deref() {
            Some("invalid_grant") => Err(ProviderError::InvalidGrant),
            // The client itself is wrong (unknown, bad secret, or not the client the grant was
            // issued to): calsync's configuration, not the user's grant.
            Some(reason @ ("invalid_client" | "unauthorized_client")) => {
                Err(self.client_pause.refused("google", reason))
            }
            reason => Err(rejected(&reply, reason)),
        }
    }

    /// An access token for `subject` (a user's email) through Google Workspace domain-wide
    /// delegation: a JWT signed with the service account's RSA key (RS256) exchanged at the token
    /// endpoint (RFC 7523 bearer grant). `invalid_grant` (an unknown user, a bad signature, a key
    /// revoked) and `unauthorized_client` (delegation not granted for this scope) come back as
    /// errors for the caller; nothing is cached here.
    pub async fn delegated_token(
        &self,
        client_email: &str,
        private_key: &str,
        subject: &str,
    ) -> Result<Token, ProviderError> {
        let result = self.delegated_once(client_email, private_key, subject).await;
        super::count_refresh(self.http.metrics(), "google_delegation", result)
    }

    async fn delegated_once(
        &self,
        client_email: &str,
        private_key: &str,
        subject: &str,
    ) -> Result<Token, ProviderError> {
        #[derive(serde::Serialize)]
        struct Claims<'a> {
            iss: &'a str,
            sub: &'a str,
            scope: &'a str,
            aud: &'a str,
            iat: i64,
            exp: i64,
        }
        let iat = crate::time::now_utc().timestamp();
        let claims = Claims {
            iss: client_email,
            sub: subject,
            scope: DELEGATION_SCOPE,
            aud: &self.cfg.token_url,
            iat,
            exp: iat + 3600,
        };
        let unreadable =
            || ProviderError::Config("the service account's private_key is not an RSA key in PEM form".into());
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(private_key.as_bytes()).map_err(|_| unreadable())?;
        let assertion = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
            &claims,
            &key,
        )
        .map_err(|_| unreadable())?;
        let form = [("grant_type", JWT_BEARER_GRANT), ("assertion", assertion.as_str())];
        let reply = self
            .http
            .send("google.token", || {
                self.http.request(Method::POST, &self.cfg.token_url).form(&form)
            })
            .await?;
        if reply.status.is_success() {
            return decode(&reply);
        }
        match error_reason(&reply.body).as_deref() {
            Some("invalid_grant") => Err(ProviderError::InvalidGrant),
            reason => Err(rejected(&reply, reason)),
        }
    }

    /// One page of `events.list` with `singleEvents=true`.
    pub async fn list_events(
        &self,
        access_token: &str,
        calendar_id: &str,
        query: &ListQuery<'_>,
        page_token: Option<&str>,
    ) -> Result<EventsPage, ProviderError> {
        let url = self.url(&["calendars", calendar_id, "events"])?;
        let page_size = self.cfg.page_size.to_string();
        let mut params: Vec<(&str, &str)> = vec![("singleEvents", "true"), ("maxResults", &page_size)];
        match query {
            ListQuery::Full { time_min, time_max } => {
                params.push(("timeMin", time_min));
                params.push(("timeMax", time_max));
            }
            ListQuery::Incremental { sync_token } => params.push(("syncToken", sync_token)),
        }
        if let Some(p) = page_token {
            params.push(("pageToken", p));
        }
        let reply = self
            .http
            .send("google.events.list", || {
                self.http
                    .request(Method::GET, url.as_str())
                    .bearer_auth(access_token)
                    .query(&params)
            })
            .await?;
        if reply.status.is_success() {
            return decode(&reply);
        }
        let reason = error_reason(&reply.body);
        let invalid_token = reply.status == StatusCode::GONE
            || reason.as_deref() == Some("fullSyncRequired")
            || (reply.status == StatusCode::BAD_REQUEST
                && String::from_utf8_lossy(&reply.body)
                    .to_ascii_lowercase()
                    .contains("invalid sync token"));
        if invalid_token {
            return Err(ProviderError::SyncTokenInvalid);
        }
        Err(classify(&reply, reason.as_deref()))
    }

    /// `events.get`: one event as it stands, `None` when Google no longer has it (404, 410). A
    /// deleted event Google still keeps comes back with `status: cancelled`.
    pub async fn get_event(
        &self,
        access_token: &str,
        calendar_id: &str,
        event_id: &str,
    ) -> Result<Option<wire::Event>, ProviderError> {
        let url = self.url(&["calendars", calendar_id, "events", event_id])?;
        let reply = self
            .http
            .send("google.events.get", || {
                self.http.request(Method::GET, url.as_str()).bearer_auth(access_token)
            })
            .await?;
        if reply.status.is_success() {
            return decode(&reply).map(Some);
        }
        if reply.status == StatusCode::NOT_FOUND || reply.status == StatusCode::GONE {
            return Ok(None);
        }
        Err(classify(&reply, error_reason(&reply.body).as_deref()))
    }

    /// `events.watch`: opens a push channel to `address`.
    pub async fn watch(
        &self,
        access_token: &str,
        calendar_id: &str,
        channel_id: &str,
        channel_token: &str,
        address: &str,
        ttl_secs: u64,
    ) -> Result<Channel, ProviderError> {
        let url = self.url(&["calendars", calendar_id, "events", "watch"])?;
        let body = serde_json::json!({
            "id": channel_id,
            "type": "web_hook",
            "address": address,
            "token": channel_token,
            "params": { "ttl": ttl_secs.to_string() },
        });
        let reply = self
            .http
            .send("google.events.watch", || {
                self.http
                    .request(Method::POST, url.as_str())
                    .bearer_auth(access_token)
                    .json(&body)
            })
            .await?;
        if reply.status.is_success() {
            return decode(&reply);
        }
        Err(classify(&reply, error_reason(&reply.body).as_deref()))
    }

    /// `channels.stop`. A channel that no longer exists counts as stopped.
    pub async fn stop(&self, access_token: &str, channel_id: &str, resource_id: &str) -> Result<(), ProviderError> {
        let url = self.url(&["channels", "stop"])?;
        let body = serde_json::json!({ "id": channel_id, "resourceId": resource_id });
        let reply = self
            .http
            .send("google.channels.stop", || {
                self.http
                    .request(Method::POST, url.as_str())
                    .bearer_auth(access_token)
                    .json(&body)
            })
            .await?;
        if reply.status.is_success() || reply.status == StatusCode::NOT_FOUND {
            return Ok(());
        }
        Err(classify(&reply, error_reason(&reply.body).as_deref()))
    }
}
