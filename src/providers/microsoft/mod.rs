//! Microsoft Graph v1.0: delta sync of a calendar view, subscriptions, and OAuth refresh (refresh
//! tokens rotate: every refresh returns a new one that must be stored).

pub mod map;
pub mod notify;
pub mod provider;
pub mod wire;

pub use provider::{provider, INTEGRATION};

use reqwest::{Method, StatusCode, Url};

use super::http::{api_url, classify, decode, rejected, Http, OAuthClient};
use super::{ProviderError, Token};
use crate::config::MicrosoftConfig;
use wire::{error_code, DeltaPage, Subscription, SubscriptionPage};

/// Graph client over the shared HTTP client.
#[derive(Clone)]
pub struct MicrosoftClient {
    http: Http,
    cfg: MicrosoftConfig,
    client_pause: super::ClientPause,
}

/// Whose calendars a Graph request reaches: `me` with a user's delegated token, `users/{email}`
/// with an app-only token (a tenant's delegation credential; `/me` means nothing there).
pub fn principal(app_user: Option<&str>) -> String {
    match app_user {
        Some(email) => format!("users/{email}"),
        None => "me".into(),
    }
}

/// What one subscription request asks for.
pub struct NewSubscription<'a> {
    /// See [`principal`].
    pub principal: &'a str,
    pub calendar_id: &'a str,
    pub notification_url: &'a str,
    pub client_state: &'a str,
    /// RFC 3339.
    pub expiration: &'a str,
}

impl MicrosoftClient {
    /// A client for the configured endpoints.
    pub fn new(http: Http, cfg: MicrosoftConfig) -> Self {
        MicrosoftClient {
            http,
            cfg,
            client_pause: Default::default(),
        }
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &MicrosoftConfig {
        &self.cfg
    }

    fn url(&self, segments: &[&str]) -> Result<Url, ProviderError> {
        api_url(&self.cfg.api_url, segments)
    }

    /// Exchanges a refresh token; the answer carries the rotated refresh token.
    pub async fn refresh(&self, refresh_token: &str) -> Result<Token, ProviderError> {
        super::count_refresh(self.http.metrics(), "microsoft", self.refresh_once(refresh_token).await)
    }

    async fn refresh_once(&self, refresh_token: &str) -> Result<Token, ProviderError> {
        if let Some(paused) = self.client_pause.active() {
            return Err(paused);
        }
        let client = OAuthClient {
            id: self.cfg.client_id.as_deref(),
            secret: self.cfg.client_secret.as_ref(),
            unconfigured: "Microsoft OAuth client id/secret are not configured (MS_GRAPH_CLIENT_ID)",
        };
        let reply = self
            .http
            .refresh_grant(
                "microsoft.token",
                &self.cfg.token_url,
                &client,
                refresh_token,
                Some("User.Read Calendars.Read offline_access"),
            )
            .await?;
        if reply.status.is_success() {
            return decode(&reply);
        }
        match error_code(&reply.body).as_deref() {
            // interaction_required: the user must sign in again, as good as a dead grant (SPEC §5).
            Some("invalid_grant") | Some("interaction_required") => Err(ProviderError::InvalidGrant),
            Some(code @ ("invalid_client" | "unauthorized_client")) => {
                Err(self.client_pause.refused("microsoft", code))
            }
            code => Err(rejected(&reply, code)),
        }
    }

    /// An app-only token for a tenant (OAuth client credentials grant, as a tenant's delegation
    /// credential grants it: `client_id`, its secret, `tenant_id`), for `.default` Graph scopes.
    pub async fn app_token(&self, tenant: &str, client_id: &str, secret: &str) -> Result<Token, ProviderError> {
        let result = self.app_token_once(tenant, client_id, secret).await;
        super::count_refresh(self.http.metrics(), "microsoft_delegation", result)
    }

    async fn app_token_once(&self, tenant: &str, client_id: &str, secret: &str) -> Result<Token, ProviderError> {
        if tenant.is_empty()
            || !tenant
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            return Err(ProviderError::Config(
                "the tenant_id is not a tenant id or domain".into(),
            ));
        }
        // The configured endpoint names the multi-tenant authority (`/common/`); app-only tokens
        // come from the tenant's own.
        let url = self.cfg.token_url.replacen("/common/", &format!("/{tenant}/"), 1);
        let form = [
            ("client_id", client_id),
            ("client_secret", secret),
            ("scope", "https://graph.microsoft.com/.default"),
            ("grant_type", "client_credentials"),
        ];
        let reply = self
            .http
            .send("microsoft.token", || self.http.request(Method::POST, &url).form(&form))
            .await?;
        if reply.status.is_success() {
            return decode(&reply);
        }
        Err(rejected(&reply, error_code(&reply.body).as_deref()))
    }

    /// The first delta request of a full sync over `[start, end)` (RFC 3339).
    pub fn initial_delta(
        &self,
        principal: &str,
        calendar_id: &str,
        start: &str,
        end: &str,
    ) -> Result<String, ProviderError> {
        let mut segments: Vec<&str> = principal.split('/').collect();
        segments.extend(["calendars", calendar_id, "calendarView", "delta"]);
        let mut url = self.url(&segments)?;
        url.query_pairs_mut()
            .append_pair("startDateTime", start)
            .append_pair("endDateTime", end);
        Ok(url.into())
    }

    /// Fetches one delta page from `url` (the initial URL, a nextLink or a deltaLink). Links must
    /// point at the configured Graph host: the access token is never sent anywhere else.
    pub async fn delta_page(&self, access_token: &str, url: &str) -> Result<DeltaPage, ProviderError> {
        let base = Url::parse(&self.cfg.api_url)
            .map_err(|_| ProviderError::Config("the Microsoft Graph URL is not valid".into()))?;
        let target = Url::parse(url).map_err(|_| ProviderError::Decode("a delta link is not a URL".into()))?;
        if target.origin() != base.origin() {
            return Err(ProviderError::Decode(
                "a delta link points outside the Graph host".into(),
            ));
        }
        let prefer = format!("outlook.timezone=\"UTC\", odata.maxpagesize={}", self.cfg.page_size);
        let reply = self
            .http
            .send("microsoft.events.delta", || {
                self.http
                    .request(Method::GET, url)
                    .bearer_auth(access_token)
                    .header("Prefer", &prefer)
            })
            .await?;
        if reply.status.is_success() {
            return decode(&reply);
        }
        let code = error_code(&reply.body).unwrap_or_default();
        let expired = reply.status == StatusCode::GONE
            || [
                "syncStateNotFound",
                "resyncRequired",
                "SyncStateNotFound",
                "InvalidDeltaToken",
                "syncStateInvalid",
            ]
            .contains(&code.as_str());
        if expired {
            return Err(ProviderError::SyncTokenInvalid);
        }
        Err(classify(&reply, Some(&code)))
    }

    /// One event of a calendar (times in UTC), `None` when Graph no longer has it (404).
    pub async fn get_event(
        &self,
        access_token: &str,
        principal: &str,
        calendar_id: &str,
        event_id: &str,
    ) -> Result<Option<wire::Event>, ProviderError> {
        let mut segments: Vec<&str> = principal.split('/').collect();
        segments.extend(["calendars", calendar_id, "events", event_id]);
        let url = self.url(&segments)?;
        let reply = self
            .http
            .send("microsoft.events.get", || {
                self.http
                    .request(Method::GET, url.as_str())
                    .bearer_auth(access_token)
                    .header("Prefer", "outlook.timezone=\"UTC\"")
            })
            .await?;
        if reply.status.is_success() {
            return decode(&reply).map(Some);
        }
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        Err(classify(&reply, error_code(&reply.body).as_deref()))
    }

    /// `POST /subscriptions` for a calendar's events. Graph validates the notification URL first.
    pub async fn subscribe(&self, access_token: &str, s: &NewSubscription<'_>) -> Result<Subscription, ProviderError> {
        let url = self.url(&["subscriptions"])?;
        let body = serde_json::json!({
            "changeType": "created,updated,deleted",
            "notificationUrl": s.notification_url,
            "lifecycleNotificationUrl": s.notification_url,
            "resource": format!("{}/calendars/{}/events", s.principal, s.calendar_id),
            "expirationDateTime": s.expiration,
            "clientState": s.client_state,
        });
        let reply = self
            .http
            .send("microsoft.subscriptions.create", || {
                self.http
                    .request(Method::POST, url.as_str())
                    .bearer_auth(access_token)
                    .json(&body)
            })
            .await?;
        if reply.status.is_success() {
            return decode(&reply);
        }
        Err(classify(&reply, error_code(&reply.body).as_deref()))
    }

    /// `PATCH /subscriptions/{id}` with a new expiration; `NotFound` means it must be recreated.
    pub async fn renew(&self, access_token: &str, id: &str, expiration: &str) -> Result<Subscription, ProviderError> {
        let url = self.url(&["subscriptions", id])?;
        let body = serde_json::json!({ "expirationDateTime": expiration });
        let reply = self
            .http
            .send("microsoft.subscriptions.renew", || {
                self.http
                    .request(Method::PATCH, url.as_str())
                    .bearer_auth(access_token)
                    .json(&body)
            })
            .await?;
        if reply.status.is_success() {
            return decode(&reply);
        }
        Err(classify(&reply, error_code(&reply.body).as_deref()))
    }

    /// `GET /subscriptions`, every page: the subscriptions calsync's app holds for the signed-in
    /// user (how a subscription whose creator died before storing its id is found again).
    pub async fn list_subscriptions(&self, access_token: &str) -> Result<Vec<Subscription>, ProviderError> {
        let base = self.url(&["subscriptions"])?;
        let mut next = base.to_string();
        let mut out = Vec::new();
        for _ in 0..100 {
            let target = Url::parse(&next).map_err(|_| ProviderError::Decode("a nextLink is not a URL".into()))?;
            if target.origin() != base.origin() {
                return Err(ProviderError::Decode("a nextLink points outside the Graph host".into()));
            }
            let reply = self
                .http
                .send("microsoft.subscriptions.list", || {
                    self.http
                        .request(Method::GET, target.as_str())
                        .bearer_auth(access_token)
                })
                .await?;
            if !reply.status.is_success() {
                return Err(classify(&reply, error_code(&reply.body).as_deref()));
            }
            let page: SubscriptionPage = decode(&reply)?;
            out.extend(page.value);
            match page.next_link {
                Some(link) => next = link,
                None => return Ok(out),
            }
        }
        Err(ProviderError::Decode(
            "GET /subscriptions did not end after 100 pages".into(),
        ))
    }

    /// `DELETE /subscriptions/{id}`; one that no longer exists counts as deleted.
    pub async fn delete(&self, access_token: &str, id: &str) -> Result<(), ProviderError> {
        let url = self.url(&["subscriptions", id])?;
        let reply = self
            .http
            .send("microsoft.subscriptions.delete", || {
                self.http
                    .request(Method::DELETE, url.as_str())
                    .bearer_auth(access_token)
            })
            .await?;
        if reply.status.is_success() || reply.status == StatusCode::NOT_FOUND {
            return Ok(());
        }
        Err(classify(&reply, error_code(&reply.body).as_deref()))
    }
}
