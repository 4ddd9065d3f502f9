//! Push channels: `subscribe` opens a Google channel or a Graph subscription for a calendar (every
//! row of it shares one) and syncs; `unsubscribe` stops it and forgets the calendar's cached rows.
//! Replacing a channel creates the new one first, stores it, and only then stops the old one, so no
//! change goes unannounced. Graph subscriptions are renewed in place (`PATCH`), recreated on 404.

use chrono::NaiveDateTime;

use super::{not_found, Engine, SyncReport, GOOGLE, OFFICE365};
use crate::config::Secret;
use crate::db::calendars::{self, Group, NewChannel};
use crate::error::{Error, Result};
use crate::providers::google::map::parse_instant;
use crate::providers::microsoft::NewSubscription;
use crate::providers::ProviderError;
use crate::time::now_db;
use crate::webhook::google::channel_token;

/// What `subscribe` did.
#[derive(Debug, Clone)]
pub struct Subscribed {
    pub channel_id: String,
    pub expiration: Option<NaiveDateTime>,
    /// The sync that followed (full when the calendar had none yet).
    pub sync: Option<SyncReport>,
}

/// A channel as the provider granted it.
struct Granted {
    id: String,
    kind: &'static str,
    resource_id: String,
    resource_uri: Option<String>,
    expiration: Option<NaiveDateTime>,
}

fn webhook_settings<'a>(token: &'a Option<Secret>, url: &'a Option<String>, what: &str) -> Result<(&'a str, &'a str)> {
    match (token.as_ref(), url.as_deref()) {
        (Some(t), Some(u)) => Ok((t.expose(), u)),
        _ => Err(Error::invalid(format!(
            "{what} push needs its webhook token and webhook URL configured"
        ))),
    }
}

impl Engine {
    /// Opens a channel for the calendar of row `id`, stores it on every row of the calendar, stops
    /// the previous channel, and syncs.
    pub async fn subscribe(&self, id: &str) -> Result<Subscribed> {
        let mut sub = self.open_channel(id).await?;
        sub.sync = Some(self.sync(id, false).await?);
        Ok(sub)
    }

    /// Opens (or replaces) the channel of row `id`'s calendar without syncing.
    pub async fn open_channel(&self, id: &str) -> Result<Subscribed> {
        let group = calendars::group_of(&self.pool, id)
            .await?
            .ok_or_else(|| not_found(id))?;
        let (_, access) = self.access_token(&group, None).await?;
        let granted = match self.create_channel(&group, &access).await {
            Ok(g) => g,
            Err(e) => {
                calendars::record_subscribe_failure(&self.pool, &group.row_ids, now_db()).await?;
                return Err(e);
            }
        };
        let new = NewChannel {
            id: &granted.id,
            kind: granted.kind,
            resource_id: &granted.resource_id,
            resource_uri: granted.resource_uri.as_deref(),
            expiration: granted.expiration,
        };
        calendars::store_channel(&self.pool, &group.row_ids, &new, now_db()).await?;
        if group.channel_id.as_deref().is_some_and(|old| old != granted.id) {
            self.stop_channel(&group, &access).await;
        }
        Ok(Subscribed {
            channel_id: granted.id,
            expiration: granted.expiration,
            sync: None,
        })
    }

    async fn create_channel(&self, group: &Group, access: &str) -> Result<Granted> {
        match group.integration.as_str() {
            GOOGLE => {
                let cfg = &self.cfg.google;
                let (secret, address) = webhook_settings(&cfg.webhook_token, &cfg.webhook_url, "Google")?;
                let channel_id = uuid::Uuid::new_v4().to_string();
                let token = channel_token(secret, &channel_id);
                let ttl = cfg.channel_ttl.as_secs();
                let ch = self
                    .google
                    .watch(access, &group.external_id, &channel_id, &token, address, ttl)
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
            OFFICE365 => {
                let cfg = &self.cfg.microsoft;
                let (secret, address) = webhook_settings(&cfg.webhook_token, &cfg.webhook_url, "Outlook")?;
                let expiration = self.graph_expiration();
                let request = NewSubscription {
                    calendar_id: &group.external_id,
                    notification_url: address,
                    client_state: secret,
                    expiration: &expiration,
                };
                let s = self.microsoft.subscribe(access, &request).await?;
                Ok(Granted {
                    resource_id: s
                        .resource
                        .unwrap_or_else(|| format!("me/calendars/{}/events", group.external_id)),
                    expiration: s.expiration_date_time.as_deref().and_then(parse_instant),
                    id: s.id,
                    kind: "graph_subscription",
                    resource_uri: None,
                })
            }
            other => Err(Error::invalid(format!("calsync does not sync '{other}' calendars"))),
        }
    }

    fn graph_expiration(&self) -> String {
        let ttl = chrono::Duration::from_std(self.cfg.microsoft.subscription_ttl).unwrap_or_default();
        (crate::time::now_utc() + ttl).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }

    /// Extends a Graph subscription in place; recreates it when Graph no longer knows it.
    pub async fn renew_graph_subscription(&self, id: &str) -> Result<Subscribed> {
        let group = calendars::group_of(&self.pool, id)
            .await?
            .ok_or_else(|| not_found(id))?;
        let Some(sub_id) = group.channel_id.clone() else {
            return self.open_channel(id).await;
        };
        let (_, access) = self.access_token(&group, None).await?;
        match self.microsoft.renew(&access, &sub_id, &self.graph_expiration()).await {
            Ok(s) => {
                let expiration = s.expiration_date_time.as_deref().and_then(parse_instant);
                calendars::store_expiration(&self.pool, &group.row_ids, expiration, now_db()).await?;
                Ok(Subscribed {
                    channel_id: s.id,
                    expiration,
                    sync: None,
                })
            }
            Err(ProviderError::NotFound) => self.open_channel(id).await,
            Err(e) => {
                calendars::record_subscribe_failure(&self.pool, &group.row_ids, now_db()).await?;
                Err(e.into())
            }
        }
    }

    /// Stops the group's current channel at the provider; failures are logged, not raised (an
    /// unstopped channel expires on its own and its notifications are ignored).
    async fn stop_channel(&self, group: &Group, access: &str) {
        let (Some(ch), Some(resource)) = (group.channel_id.as_deref(), group.channel_resource_id.as_deref()) else {
            return;
        };
        let result = match group.integration.as_str() {
            GOOGLE => self.google.stop(access, ch, resource).await,
            OFFICE365 => self.microsoft.delete(access, ch).await,
            _ => Ok(()),
        };
        if let Err(e) = result {
            tracing::warn!(calendar = %group.owner_id, error = %e, "could not stop a channel");
        }
    }

    /// Stops the calendar's channel (if any) and deletes its cached rows and sync state.
    pub async fn unsubscribe(&self, id: &str) -> Result<u64> {
        let group = calendars::group_of(&self.pool, id)
            .await?
            .ok_or_else(|| not_found(id))?;
        if group.channel_id.is_some() {
            // A dead credential cannot stop anything; the channel then simply expires.
            match self.access_token(&group, None).await {
                Ok((_, access)) => self.stop_channel(&group, &access).await,
                Err(e) => tracing::warn!(calendar = %group.owner_id, error = %e, "no access token to stop the channel"),
            }
        }
        calendars::clear_subscription(&self.pool, &group.row_ids).await
    }
}
