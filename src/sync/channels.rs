//! Push channels: `subscribe` opens a channel for a calendar (every row of it shares one) and runs
//! the first full sync; `unsubscribe` stops it and forgets the calendar's cached rows. Renewal creates
//! the new channel first, stores it, and only then stops the old one, so no change goes unannounced.

use chrono::NaiveDateTime;

use super::{auth, ensure_google, not_found, Engine, SyncReport};
use crate::db::calendars::{self, NewChannel};
use crate::error::{Error, Result};
use crate::time::now_db;
use crate::webhook::google::channel_token;

/// What `subscribe` did.
#[derive(Debug, Clone)]
pub struct Subscribed {
    pub channel_id: String,
    pub expiration: Option<NaiveDateTime>,
    /// The sync that followed (full when the calendar had none yet).
    pub sync: SyncReport,
}

impl Engine {
    /// Opens a channel for the calendar of row `id`, stores it on every row of the calendar, stops
    /// the previous channel, and syncs.
    pub async fn subscribe(&self, id: &str) -> Result<Subscribed> {
        let group = calendars::group_of_pool(&self.pool, id)
            .await?
            .ok_or_else(|| not_found(id))?;
        ensure_google(&group)?;
        let cfg = &self.cfg.google;
        let (Some(secret), Some(address)) = (cfg.webhook_token.as_ref(), cfg.webhook_url.as_deref()) else {
            return Err(Error::invalid(
                "Google push needs GOOGLE_WEBHOOK_TOKEN and GOOGLE_WEBHOOK_URL (or NEXT_PUBLIC_WEBAPP_URL)",
            ));
        };
        let credential = group
            .credential_id
            .ok_or_else(|| Error::invalid(format!("selected calendar {id} has no credential")))?;
        let access = auth::google_access_token(&self.pool, &self.google, credential, false).await?;
        let channel_id = uuid::Uuid::new_v4().to_string();
        let token = channel_token(secret.expose(), &channel_id);
        let ttl = cfg.channel_ttl.as_secs();
        let channel = match self
            .google
            .watch(&access, &group.external_id, &channel_id, &token, address, ttl)
            .await
        {
            Ok(c) => c,
            Err(e) => {
                calendars::record_subscribe_failure(&self.pool, &group.row_ids, now_db()).await?;
                return Err(e.into());
            }
        };
        let expiration = channel
            .expiration
            .and_then(chrono::DateTime::from_timestamp_millis)
            .map(|t| t.naive_utc());
        let new = NewChannel {
            id: &channel.id,
            kind: "web_hook",
            resource_id: &channel.resource_id,
            resource_uri: channel.resource_uri.as_deref(),
            expiration,
        };
        calendars::store_channel(&self.pool, &group.row_ids, &new, now_db()).await?;
        if let (Some(old), Some(resource)) = (group.channel_id.as_deref(), group.channel_resource_id.as_deref()) {
            if old != channel.id {
                if let Err(e) = self.google.stop(&access, old, resource).await {
                    tracing::warn!(calendar = %group.owner_id, error = %e, "could not stop the previous channel");
                }
            }
        }
        let sync = self.sync(id, false).await?;
        Ok(Subscribed {
            channel_id: channel.id,
            expiration,
            sync,
        })
    }

    /// Stops the calendar's channel (if any) and deletes its cached rows and sync state.
    pub async fn unsubscribe(&self, id: &str) -> Result<u64> {
        let group = calendars::group_of_pool(&self.pool, id)
            .await?
            .ok_or_else(|| not_found(id))?;
        if let (Some(ch), Some(resource), Some(credential)) = (
            group.channel_id.as_deref(),
            group.channel_resource_id.as_deref(),
            group.credential_id,
        ) {
            if group.integration == super::GOOGLE {
                // A dead credential cannot stop anything; the channel then simply expires.
                match auth::google_access_token(&self.pool, &self.google, credential, false).await {
                    Ok(access) => {
                        if let Err(e) = self.google.stop(&access, ch, resource).await {
                            tracing::warn!(calendar = %group.owner_id, error = %e, "could not stop the channel");
                        }
                    }
                    Err(e) => {
                        tracing::warn!(calendar = %group.owner_id, error = %e, "no access token to stop the channel")
                    }
                }
            }
        }
        calendars::clear_subscription(&self.pool, &group.row_ids).await
    }
}
