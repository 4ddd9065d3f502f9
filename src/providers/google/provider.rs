//! Google Calendar as a [`Provider`]: `events.list` with sync tokens, `events.watch` channels
//! named by calsync with per-channel tokens, refresh tokens whose `expiry_date` is in epoch
//! milliseconds, and Workspace domain-wide delegation acting as one user.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::NaiveDateTime;
use chrono_tz::Tz;

use super::channel::{self, channel_token, verify};
use super::map::{map_event, Rules};
use super::{GoogleClient, ListQuery};
use crate::config::Config;
use crate::error::Result;
use crate::model::{Request, Response, Target};
use crate::providers::http::Http;
use crate::providers::{
    webhook_settings, Action, Fetched, Granted, Inbound, Next, Notice, Page, Provider, ProviderError, Resource, Start,
    Token,
};
use crate::time::rfc3339;

/// Cal.com's integration name for Google calendars.
pub const INTEGRATION: &str = "google_calendar";

/// Builds the Google provider (its [`crate::providers::REGISTRY`] entry).
pub fn provider(http: &Http, cfg: &Config) -> Arc<dyn Provider> {
    Arc::new(GoogleClient::new(http.clone(), cfg.google.clone()))
}

#[async_trait]
impl Provider for GoogleClient {
    fn integration(&self) -> &'static str {
        INTEGRATION
    }

    fn label(&self) -> &'static str {
        "google"
    }

    fn endpoints(&self) -> &'static [&'static str] {
        &[
            "google.token",
            "google.events.list",
            "google.events.get",
            "google.events.watch",
            "google.channels.stop",
        ]
    }

    fn expiry_unit_ms(&self) -> i64 {
        1
    }

    async fn refresh(&self, refresh_token: &str) -> Result<Token, ProviderError> {
        GoogleClient::refresh(self, refresh_token).await
    }

    fn delegation_platform(&self) -> &'static str {
        "google"
    }

    fn delegation_subject(&self, user_email: &str) -> String {
        user_email.to_lowercase() // a token acts as one user
    }

    async fn delegated_token(&self, key: &serde_json::Value, subject: &str) -> Result<Token, ProviderError> {
        let field = |name: &str| key.get(name).and_then(|v| v.as_str()).filter(|v| !v.is_empty());
        let (Some(client_email), Some(private_key)) = (field("client_email"), field("private_key")) else {
            return Err(ProviderError::Config(
                "has no client_email and private_key in serviceAccountKey".into(),
            ));
        };
        GoogleClient::delegated_token(self, client_email, private_key, subject).await
    }

    async fn list(
        &self,
        access: &str,
        calendar: &Target<'_>,
        start: Start<'_>,
        page: Option<&str>,
        tz: Tz,
    ) -> Result<Page, ProviderError> {
        let window;
        let query = match start {
            Start::Since(sync_token) => ListQuery::Incremental { sync_token },
            Start::Full { from, to } => {
                window = (rfc3339(from), rfc3339(to));
                ListQuery::Full {
                    time_min: &window.0,
                    time_max: &window.1,
                }
            }
        };
        let listed = self.list_events(access, calendar.external_id, &query, page).await?;
        let time_zone = listed.time_zone.as_deref().and_then(|z| z.parse::<Tz>().ok());
        let rules = Rules {
            declined_is_free: self.config().declined_is_free,
        };
        let changes = listed
            .items
            .iter()
            .map(|ev| map_event(ev, time_zone.unwrap_or(tz), rules))
            .collect::<Result<Vec<_>, _>>()?;
        let next = match (listed.next_page_token, listed.next_sync_token) {
            (Some(next), _) => Next::Page(next),
            (None, token) => Next::Done(token),
        };
        Ok(Page {
            changes,
            time_zone,
            next,
        })
    }

    async fn get_event(
        &self,
        access: &str,
        calendar: &Target<'_>,
        event_id: &str,
        tz: Tz,
    ) -> Result<Fetched, ProviderError> {
        let Some(ev) = GoogleClient::get_event(self, access, calendar.external_id, event_id).await? else {
            return Ok(Fetched::Gone);
        };
        if ev.status.as_deref() == Some("cancelled") {
            return Ok(Fetched::Cancelled {
                organizer: ev.organizer.as_ref().is_none_or(|o| o.is_self),
                ical_uid: ev.ical_uid,
            });
        }
        let rules = Rules {
            declined_is_free: self.config().declined_is_free,
        };
        Ok(Fetched::Listed(Box::new(map_event(&ev, tz, rules)?)))
    }

    fn keeps_app_ical_uid(&self) -> bool {
        true
    }

    fn in_legacy_cache(&self) -> bool {
        true
    }

    fn watchable(&self, external_id: &str) -> bool {
        // Holidays, contacts' birthdays, week numbers: Google refuses to watch them.
        !external_id.ends_with("@group.v.calendar.google.com")
    }

    fn names_channels(&self) -> bool {
        true
    }

    fn channel_ttl(&self) -> Duration {
        self.config().channel_ttl
    }

    async fn open_channel(&self, access: &str, calendar: &Target<'_>, channel_id: &str) -> Result<Granted> {
        let cfg = self.config();
        let (secret, address) = webhook_settings(cfg.webhook_token.as_ref(), cfg.webhook_url.as_deref(), "Google")?;
        let token = channel_token(secret, channel_id);
        let ch = self
            .watch(
                access,
                calendar.external_id,
                channel_id,
                &token,
                address,
                cfg.channel_ttl.as_secs(),
            )
            .await?;
        Ok(Granted {
            id: ch.id,
            kind: "web_hook",
            resource_id: ch.resource_id,
            resource_uri: ch.resource_uri,
            expiration: ch
                .expiration
                .and_then(chrono::DateTime::from_timestamp_millis)
                .map(|t| t.naive_utc()),
        })
    }

    fn renews_in_place(&self) -> bool {
        false // a channel is replaced by a new one
    }

    async fn renew_channel(&self, _access: &str, _channel_id: &str) -> Result<Option<NaiveDateTime>, ProviderError> {
        Err(ProviderError::NotFound)
    }

    fn stops_by_resource(&self) -> bool {
        true
    }

    async fn stop_channel(&self, access: &str, channel_id: &str, resource_id: &str) -> Result<(), ProviderError> {
        self.stop(access, channel_id, resource_id).await
    }

    async fn find_channels(&self, _access: &str, _calendar: &Target<'_>) -> Result<Vec<String>, ProviderError> {
        Ok(Vec::new()) // calsync names every channel: the ledger always knows its id
    }

    fn read_webhook(&self, req: &Request) -> Inbound {
        let secret = self.cfg.webhook_token.as_ref().map(|s| s.expose());
        match verify(req, secret) {
            Err(refused) => {
                let outcome = match refused.status {
                    503 => "unconfigured",
                    400 => "malformed",
                    _ => "forged",
                };
                let response = Response::json(refused.status, refused.outcome, Some(refused.message));
                Inbound::answer(outcome, response, refused.message)
            }
            Ok(channel::Notice::Handshake) => Inbound::answer("handshake", Response::json(200, "handshake", None), ""),
            Ok(channel::Notice::Ignored) => Inbound::answer("ignored", Response::json(200, "ignored", None), ""),
            Ok(channel::Notice::Changed {
                channel_id,
                resource_id,
                token,
            }) => Inbound::Notices {
                notices: vec![Notice {
                    channel_id,
                    resource: Resource::Named(resource_id),
                    shared_secret: token == channel::Token::Shared,
                    action: Action::Sync,
                }],
                accepted: 1,
                rejected: 0,
            },
        }
    }

    fn batches_notices(&self) -> bool {
        false
    }
}
