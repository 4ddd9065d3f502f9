//! Push channels: `subscribe` opens a Google channel or a Graph subscription for a calendar (every
//! row of it shares one) and syncs; `unsubscribe` stops it and forgets the calendar's cached rows.
//!
//! Every change to a calendar's channel — subscribe, renewal, a Graph lifecycle event, unsubscribe —
//! runs under the calendar's `channel:` claim, so concurrent callers in any processes take turns and
//! each sees what the previous one stored. A new channel is written to the channel ledger
//! (`"CalendarSyncChannel"`) before the provider is asked for it, stored on the calendar's rows,
//! and only then is the old one stopped: no change goes unannounced, and a channel whose opener
//! failed or died at any step is found in the ledger and stopped by [`Engine::stop_orphans`].
//! Channels a provider renews in place (Graph's `PATCH`) are renewed so, and recreated on 404.

use chrono::NaiveDateTime;

use super::{not_found, Engine, SyncReport};
use crate::db::calendars::{self, Group, NewChannel};
use crate::db::channels::{self as ledger, Orphan};
use crate::db::lease::{self, Lease};
use crate::error::{Error, Result};
use crate::model::Target;
use crate::providers::ProviderError;
use crate::time::now_db;

/// What `subscribe` did.
#[derive(Debug, Clone)]
pub struct Subscribed {
    pub channel_id: String,
    pub expiration: Option<NaiveDateTime>,
    /// The sync that followed (full when the calendar had none yet).
    pub sync: Option<SyncReport>,
    /// No channel of the calendar was live when this one was opened (none yet, expired, or gone
    /// at the provider): changes made meanwhile were announced to nobody. A pending mark was
    /// written with the channel, so the calendar is synced (by the caller, else by any process
    /// that re-drives marks) before reads trust it past the grace.
    pub lapsed: bool,
}

/// The claim every change to one calendar's channel takes.
fn channel_key(user_id: i32, integration: &str, external_id: &str) -> String {
    format!("channel:{user_id}:{integration}:{external_id}")
}

impl Engine {
    /// Opens a channel for the calendar of row `id`, stores it on every row of the calendar, stops
    /// the previous channel, and syncs (the sync covers whatever changed while no channel was stored).
    pub async fn subscribe(&self, id: &str) -> Result<Subscribed> {
        let group = calendars::group_of(&self.pool, id)
            .await?
            .ok_or_else(|| not_found(id))?;
        if crate::providers::polled(&group.integration) {
            // Nothing to watch: polls keep the calendar fresh, starting with this sync.
            return Ok(Subscribed {
                channel_id: String::new(),
                expiration: None,
                sync: Some(self.sync(id, false).await?),
                lapsed: false,
            });
        }
        let mut sub = self.open_channel(id).await?;
        sub.sync = Some(self.sync(id, false).await?);
        Ok(sub)
    }

    /// The calendar's `channel:` claim, waiting for another process's channel change to end, and
    /// the calendar as it stands once the claim is held.
    async fn claim_channel(&self, id: &str) -> Result<(Group, Lease)> {
        let group = calendars::group_of(&self.pool, id)
            .await?
            .ok_or_else(|| not_found(id))?;
        let key = channel_key(group.user_id, &group.integration, &group.external_id);
        let ttl = self.cfg.sync.lease;
        let claim = lease::take(&self.pool, &key, ttl, ttl + self.cfg.http.request_timeout).await?;
        match calendars::group_of(&self.pool, id).await {
            Ok(Some(group)) => Ok((group, claim)),
            Ok(None) => {
                claim.release(&self.pool).await;
                Err(not_found(id))
            }
            Err(e) => {
                claim.release(&self.pool).await;
                Err(e)
            }
        }
    }

    /// Opens (or replaces) the channel of row `id`'s calendar without syncing.
    pub async fn open_channel(&self, id: &str) -> Result<Subscribed> {
        let (group, claim) = self.claim_channel(id).await?;
        let out = self.open_claimed(&group, &claim, false).await;
        claim.release(&self.pool).await;
        out
    }

    /// Opens a channel under the calendar's claim; `gone`: the provider said the current one no
    /// longer exists.
    async fn open_claimed(&self, group: &Group, claim: &Lease, gone: bool) -> Result<Subscribed> {
        let lapsed = gone || group.channel_id.is_none() || group.channel_expiration.is_none_or(|e| e <= now_db());
        let provider = self.provider(&group.integration)?;
        let access = self.access_token(group, None).await?;
        let ledger_id = uuid::Uuid::new_v4().to_string();
        let chosen = provider.names_channels().then_some(ledger_id.as_str());
        ledger::opening(&self.pool, &ledger_id, chosen, group).await?;
        let granted = match provider.open_channel(&access, &group.target(), &ledger_id).await {
            Ok(g) => g,
            Err(e) => {
                // A refused credential or a missing setting opened nothing. Anything else may
                // have (a timeout after Google acted, whose retry then hears `channelIdNotUnique`):
                // the ledger row stays for the sweep, which stops the channel if it exists.
                if matches!(
                    e,
                    Error::InvalidArgument(_) | Error::ProviderAuth(_) | Error::ProviderConfig(_)
                ) {
                    self.forget_ledger(&ledger_id).await;
                }
                calendars::record_subscribe_failure(&self.pool, &group.row_ids, now_db()).await?;
                return Err(e);
            }
        };
        // The claim may have run out while the provider was slow: another process may be changing
        // this calendar's channel now. Never store over it; stop what this attempt opened instead.
        let new = NewChannel {
            ledger_id: &ledger_id,
            id: &granted.id,
            kind: granted.kind,
            resource_id: &granted.resource_id,
            resource_uri: granted.resource_uri.as_deref(),
            expiration: granted.expiration,
        };
        let stored = match claim.renew(&self.pool, self.cfg.sync.lease).await {
            Ok(true) => calendars::store_channel(&self.pool, &group.row_ids, &new, now_db()).await,
            Ok(false) => Err(Error::Database(
                "the calendar's channel claim ran out while its channel was opened; try again".into(),
            )),
            Err(e) => Err(e),
        };
        // With no live channel before this one, changes may have gone unannounced: the mark
        // (written with the channel, before any old one is stopped) makes a sync owed.
        let stored = match stored {
            Ok(()) if lapsed => calendars::mark_pending(&self.pool, &group.row_ids, self.cfg.connect_timeout).await,
            other => other,
        };
        if let Err(e) = stored {
            let opened = (granted.id.as_str(), granted.resource_id.as_str());
            if self.stop(&group.integration, &access, opened).await {
                self.forget_ledger(&ledger_id).await;
            }
            return Err(e);
        }
        if let (Some(old), Some(resource)) = (group.channel_id.as_deref(), group.channel_resource_id.as_deref()) {
            if old != granted.id && self.stop(&group.integration, &access, (old, resource)).await {
                self.forget_stopped(old).await;
            }
        }
        Ok(Subscribed {
            channel_id: granted.id,
            expiration: granted.expiration,
            sync: None,
            lapsed,
        })
    }

    async fn forget_ledger(&self, ledger_id: &str) {
        if let Err(e) = ledger::forget(&self.pool, ledger_id).await {
            tracing::debug!(error = %e, "a ledger row stays until the sweep");
        }
    }

    /// Forgets the ledger row of a channel just stopped by its provider id.
    async fn forget_stopped(&self, channel_id: &str) {
        if let Err(e) = ledger::forget_channel(&self.pool, channel_id).await {
            tracing::debug!(error = %e, "a stopped channel stays in the ledger until the sweep");
        }
    }

    /// Renews the channel of row `id`'s calendar: in place where its provider can (recreated when
    /// the provider no longer knows it), else by opening a new one.
    pub async fn renew_channel(&self, id: &str) -> Result<Subscribed> {
        let (group, claim) = self.claim_channel(id).await?;
        let out = self.renew_claimed(&group, &claim).await;
        claim.release(&self.pool).await;
        out
    }

    async fn renew_claimed(&self, group: &Group, claim: &Lease) -> Result<Subscribed> {
        let provider = self.provider(&group.integration)?;
        let Some(channel_id) = group.channel_id.clone().filter(|_| provider.renews_in_place()) else {
            return self.open_claimed(group, claim, group.channel_id.is_none()).await;
        };
        let access = self.access_token(group, None).await?;
        match provider.renew_channel(&access, &channel_id).await {
            Ok(expiration) => {
                calendars::store_expiration(&self.pool, &group.row_ids, &channel_id, expiration, now_db()).await?;
                Ok(Subscribed {
                    channel_id,
                    expiration,
                    sync: None,
                    lapsed: false,
                })
            }
            Err(ProviderError::NotFound) => self.open_claimed(group, claim, true).await,
            Err(e) => {
                calendars::record_subscribe_failure(&self.pool, &group.row_ids, now_db()).await?;
                Err(e.into())
            }
        }
    }

    /// Stops a channel (`(id, resource id)`) at the provider; true once it is gone (a channel the
    /// provider no longer knows counts). A failure is logged, not raised: the channel stays in the
    /// ledger and the sweep tries again.
    async fn stop(&self, integration: &str, access: &str, (ch, resource): (&str, &str)) -> bool {
        let result = match self.provider(integration) {
            Ok(p) => p.stop_channel(access, ch, resource).await,
            Err(_) => Ok(()),
        };
        match result {
            Ok(()) => true,
            Err(e) => {
                let code = Error::from(e).code();
                tracing::warn!(integration, code, "could not stop a channel; the sweep will retry");
                false
            }
        }
    }

    /// Stops the calendar's channel (if any) and deletes its cached rows and sync state.
    pub async fn unsubscribe(&self, id: &str) -> Result<u64> {
        let (group, claim) = self.claim_channel(id).await?;
        if let (Some(ch), Some(resource)) = (group.channel_id.as_deref(), group.channel_resource_id.as_deref()) {
            // A dead credential cannot stop anything; the ledger keeps the channel for the sweep,
            // and it expires on its own.
            match self.access_token(&group, None).await {
                Ok(access) => {
                    if self.stop(&group.integration, &access, (ch, resource)).await {
                        self.forget_stopped(ch).await;
                    }
                }
                Err(e) => tracing::warn!(calendar = %group.owner_id, error = %e, "no access token to stop the channel"),
            }
        }
        let out = calendars::clear_subscription(&self.pool, &group.row_ids).await;
        claim.release(&self.pool).await;
        out
    }

    /// Stops every channel in the ledger that no calendar carries any more — its opener failed or
    /// died before storing it, or it was replaced and its stop failed — and forgets those stopped or
    /// expired. Each calendar's channel claim is held meanwhile, so a channel being opened right now
    /// is never taken for an orphan. Returns how many channels were stopped.
    pub async fn stop_orphans(&self) -> Result<u64> {
        // The longest lifetime calsync asks for, a day over: a ledger row older than that whose
        // provider never named an expiration (its watch failed or was never answered) is dead.
        let longest = self.providers().map(|p| p.channel_ttl()).max().unwrap_or_default()
            + std::time::Duration::from_secs(86_400);
        ledger::forget_expired(&self.pool, longest.as_millis() as i64).await?;
        let by_resource: Vec<&str> = self
            .providers()
            .filter(|p| p.stops_by_resource())
            .map(|p| p.integration())
            .collect();
        let orphans = ledger::orphans(&self.pool, 500, &by_resource).await?;
        let mut stopped = 0;
        for o in orphans {
            if o.expired {
                self.forget_ledger(&o.id).await;
                continue;
            }
            // The calendar's channel claim: a ledger row of an opening still in progress looks just
            // like an orphan, and is left alone while its opener holds the claim.
            let key = channel_key(o.user_id, &o.integration, &o.external_id);
            let Some(claim) = lease::try_take(&self.pool, &key, self.cfg.sync.lease).await? else {
                continue;
            };
            match self.stop_orphan(&o).await {
                Ok(n) => stopped += n,
                Err(e) => {
                    tracing::warn!(code = e.code(), error = %e, "could not stop a leaked channel; next pass retries")
                }
            }
            claim.release(&self.pool).await;
        }
        Ok(stopped)
    }

    async fn stop_orphan(&self, o: &Orphan) -> Result<u64> {
        let access = match o.credential_id {
            Some(credential) => {
                let source = self.provider(&o.integration)?;
                super::auth::access_token(&self.pool, source, credential, None, self.refresh_claim()).await?
            }
            None => {
                // A calendar reached through its organisation's delegation credential: a row of the
                // calendar that still names it gives the way in.
                let row: Option<String> = crate::db::sql::stmt(
                    r#"SELECT id FROM "SelectedCalendar"
                       WHERE "userId" = $1 AND integration = $2 AND "externalId" = $3 AND "delegationCredentialId" IS NOT NULL
                       LIMIT 1"#,
                )
                .int(o.user_id)
                .text(o.integration.as_str())
                .text(o.external_id.as_str())
                .scalar(&self.pool)
                .await?;
                let group = match row {
                    Some(row) => calendars::group_of(&self.pool, &row).await?,
                    None => None,
                };
                match group {
                    Some(group) => self.access_token(&group, None).await?,
                    None => {
                        self.forget_ledger(&o.id).await;
                        return Ok(0);
                    }
                }
            }
        };
        let provider = self.provider(&o.integration)?;
        let mut stopped = 0;
        match o.channel_id.as_deref() {
            Some(ch) => {
                // Without the resource id nothing can be stopped yet; the next channel opened on
                // this calendar tells it.
                let resource = match o.resource_id.as_deref() {
                    Some(r) => r,
                    None if provider.stops_by_resource() => return Ok(0),
                    None => "",
                };
                if !self.stop(&o.integration, &access, (ch, resource)).await {
                    return Ok(0);
                }
                stopped += 1;
            }
            None => {
                // The provider named the channel in an answer nobody stored: find it by calendar.
                let target = Target {
                    external_id: &o.external_id,
                    acting_for: None,
                    user_email: "",
                };
                let candidates = provider.find_channels(&access, &target).await?;
                let stored = calendars::by_channels(&self.pool, &o.integration, &candidates).await?;
                // Only channels a calendar row carries are in use (the ledger knows the rest).
                let in_use = |c: &String| stored.get(c).is_some_and(|r| !r.from_ledger);
                for ch in candidates.iter().filter(|c| !in_use(c)) {
                    if !self.stop(&o.integration, &access, (ch, "")).await {
                        return Ok(stopped);
                    }
                    stopped += 1;
                }
            }
        }
        ledger::forget(&self.pool, &o.id).await?;
        Ok(stopped)
    }
}
