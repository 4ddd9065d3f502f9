//! Microsoft Graph as a [`Provider`]: `calendarView/delta` with delta links as cursors,
//! subscriptions named by Graph and renewed in place (`PATCH`), rotating refresh tokens whose
//! `expiry_date` is in epoch seconds, and a tenant's app-only token for delegation (requests then
//! name the user instead of `me`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::NaiveDateTime;
use chrono_tz::Tz;

use super::map::{map_event, Rules};
use super::notify::{triage, validation_token, MAX_BODY};
use super::{principal, MicrosoftClient, NewSubscription};
use crate::config::Config;
use crate::error::Result;
use crate::model::{Request, Response, Target};
use crate::providers::http::Http;
use crate::providers::{
    webhook_settings, Fetched, Granted, Inbound, Next, Notice, Page, Provider, ProviderError, Resource, Start, Token,
};
use crate::time::{parse_instant, rfc3339};

/// Cal.com's integration name for Outlook calendars.
pub const INTEGRATION: &str = "office365_calendar";

/// Builds the Microsoft provider (its [`crate::providers::REGISTRY`] entry).
pub fn provider(http: &Http, cfg: &Config) -> Arc<dyn Provider> {
    Arc::new(MicrosoftClient::new(http.clone(), cfg.microsoft.clone()))
}

impl MicrosoftClient {
    fn rules(&self) -> Rules {
        Rules {
            working_elsewhere_is_busy: self.config().working_elsewhere_is_busy,
        }
    }

    /// A subscription's expiration for one requested now: now plus the configured lifetime.
    fn expiration(&self) -> String {
        let ttl = chrono::Duration::from_std(self.config().subscription_ttl).unwrap_or_default();
        rfc3339(crate::time::now_db() + ttl)
    }
}

#[async_trait]
impl Provider for MicrosoftClient {
    fn integration(&self) -> &'static str {
        INTEGRATION
    }

    fn label(&self) -> &'static str {
        "microsoft"
    }

    fn endpoints(&self) -> &'static [&'static str] {
        &[
            "microsoft.token",
            "microsoft.events.delta",
            "microsoft.events.get",
            "microsoft.subscriptions.create",
            "microsoft.subscriptions.renew",
            "microsoft.subscriptions.list",
            "microsoft.subscriptions.delete",
        ]
    }

    fn expiry_unit_ms(&self) -> i64 {
        1000
    }

    async fn refresh(&self, refresh_token: &str) -> Result<Token, ProviderError> {
        MicrosoftClient::refresh(self, refresh_token).await
    }

    fn delegation_platform(&self) -> &'static str {
        "office365"
    }

    fn delegation_subject(&self, _user_email: &str) -> String {
        String::new() // a tenant's app token serves all of its users
    }

    async fn delegated_token(&self, key: &serde_json::Value, _subject: &str) -> Result<Token, ProviderError> {
        let field = |name: &str| key.get(name).and_then(|v| v.as_str()).filter(|v| !v.is_empty());
        let (Some(client_id), Some(secret), Some(tenant)) =
            (field("client_id"), field("private_key"), field("tenant_id"))
        else {
            return Err(ProviderError::Config(
                "has no client_id, private_key (the client secret) and tenant_id in serviceAccountKey".into(),
            ));
        };
        self.app_token(tenant, client_id, secret).await
    }

    async fn list(
        &self,
        access: &str,
        calendar: &Target<'_>,
        start: Start<'_>,
        page: Option<&str>,
        _tz: Tz,
    ) -> Result<Page, ProviderError> {
        let url = match (page, start) {
            (Some(next), _) => next.to_string(),
            (None, Start::Since(link)) => link.to_string(),
            (None, Start::Full { from, to }) => self.initial_delta(
                &principal(calendar.acting_for),
                calendar.external_id,
                &rfc3339(from),
                &rfc3339(to),
            )?,
        };
        let delta = self.delta_page(access, &url).await?;
        let rules = self.rules();
        let changes = delta
            .value
            .iter()
            .map(|ev| map_event(ev, rules))
            .collect::<Result<Vec<_>, _>>()?;
        let next = match (delta.next_link, delta.delta_link) {
            (Some(next), _) => Next::Page(next),
            (None, Some(delta)) => Next::Done(Some(delta)),
            (None, None) => return Err(ProviderError::Decode("a delta page without links".into())),
        };
        Ok(Page {
            changes,
            time_zone: None,
            next,
        })
    }

    async fn get_event(
        &self,
        access: &str,
        calendar: &Target<'_>,
        event_id: &str,
        _tz: Tz,
    ) -> Result<Fetched, ProviderError> {
        let who = principal(calendar.acting_for);
        let Some(ev) = MicrosoftClient::get_event(self, access, &who, calendar.external_id, event_id).await? else {
            return Ok(Fetched::Gone);
        };
        if ev.is_cancelled == Some(true) {
            return Ok(Fetched::Cancelled {
                organizer: ev.is_organizer.unwrap_or(true),
                ical_uid: None, // Exchange's own: references name Outlook bookings
            });
        }
        Ok(Fetched::Listed(Box::new(map_event(&ev, self.rules())?)))
    }

    fn keeps_app_ical_uid(&self) -> bool {
        false // Graph's iCalUId is read-only: Exchange generates it
    }

    fn in_legacy_cache(&self) -> bool {
        false
    }

    fn watchable(&self, _external_id: &str) -> bool {
        true
    }

    fn names_channels(&self) -> bool {
        false
    }

    fn channel_ttl(&self) -> Duration {
        self.config().subscription_ttl
    }

    async fn open_channel(&self, access: &str, calendar: &Target<'_>, _channel_id: &str) -> Result<Granted> {
        let cfg = self.config();
        let (secret, address) = webhook_settings(cfg.webhook_token.as_ref(), cfg.webhook_url.as_deref(), "Outlook")?;
        let expiration = self.expiration();
        let who = principal(calendar.acting_for);
        let request = NewSubscription {
            principal: &who,
            calendar_id: calendar.external_id,
            notification_url: address,
            client_state: secret,
            expiration: &expiration,
        };
        let s = self.subscribe(access, &request).await?;
        Ok(Granted {
            resource_id: s
                .resource
                .unwrap_or_else(|| format!("{who}/calendars/{}/events", calendar.external_id)),
            expiration: s.expiration_date_time.as_deref().and_then(parse_instant),
            id: s.id,
            kind: "graph_subscription",
            resource_uri: None,
        })
    }

    fn renews_in_place(&self) -> bool {
        true
    }

    async fn renew_channel(&self, access: &str, channel_id: &str) -> Result<Option<NaiveDateTime>, ProviderError> {
        let s = self.renew(access, channel_id, &self.expiration()).await?;
        Ok(s.expiration_date_time.as_deref().and_then(parse_instant))
    }

    fn stops_by_resource(&self) -> bool {
        false
    }

    async fn stop_channel(&self, access: &str, channel_id: &str, _resource_id: &str) -> Result<(), ProviderError> {
        self.delete(access, channel_id).await
    }

    async fn find_channels(&self, access: &str, calendar: &Target<'_>) -> Result<Vec<String>, ProviderError> {
        let ours = self.config().webhook_url.as_deref();
        let resource = format!("me/calendars/{}/events", calendar.external_id);
        let subs = self.list_subscriptions(access).await?;
        Ok(subs
            .iter()
            .filter(|s| {
                s.resource.as_deref().is_some_and(|r| r.eq_ignore_ascii_case(&resource))
                    && (ours.is_none() || s.notification_url.as_deref() == ours)
            })
            .map(|s| s.id.clone())
            .collect())
    }

    fn read_webhook(&self, req: &Request) -> Inbound {
        if let Some(token) = validation_token(&req.query) {
            return Inbound::answer("handshake", Response::text(200, token), "");
        }
        let Some(secret) = self.config().webhook_token.as_ref() else {
            let reason = "MICROSOFT_WEBHOOK_TOKEN is not configured";
            return Inbound::answer(
                "unconfigured",
                Response::json(503, "unconfigured", Some(reason)),
                reason,
            );
        };
        let malformed =
            |status, reason| Inbound::answer("malformed", Response::json(status, "rejected", Some(reason)), reason);
        if req.body.len() > MAX_BODY {
            return malformed(413, "the body is larger than a Graph notification batch can be");
        }
        let items = match serde_json::from_str::<serde_json::Value>(&req.body) {
            Ok(serde_json::Value::Object(mut body)) => match body.remove("value") {
                Some(serde_json::Value::Array(items)) => items,
                _ => return malformed(400, "the body has no value array"),
            },
            Ok(_) => return malformed(400, "the body has no value array"),
            Err(_) => return malformed(400, "the body is not JSON"),
        };
        let (todo, tally) = triage(&items, secret.expose());
        if tally.accepted == 0 && tally.rejected > 0 {
            let reason = "no item carried a valid clientState";
            return Inbound::Answer {
                outcome: "forged",
                items: tally.rejected,
                response: Response::json(403, "rejected", Some(reason)),
                reason,
            };
        }
        Inbound::Notices {
            notices: todo
                .into_iter()
                .map(|(channel_id, action)| Notice {
                    channel_id,
                    resource: Resource::Unchecked,
                    shared_secret: false,
                    action,
                })
                .collect(),
            accepted: tally.accepted,
            rejected: tally.rejected,
        }
    }

    fn batches_notices(&self) -> bool {
        true
    }
}
