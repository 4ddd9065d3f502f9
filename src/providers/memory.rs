//! A provider that lives in this process's memory, for tests only: what it takes to add a provider
//! (this folder-less module and one line of `REGISTRY`), and a calendar the real engine syncs with
//! no HTTP in between. Calendars are keyed by external id; every change goes to a log that cursors
//! index into, two events a page.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::NaiveDateTime;
use chrono_tz::Tz;

use crate::config::Config;
use crate::error::Result;
use crate::model::{CacheEvent, Change, Request, Response, Target};
use crate::providers::http::Http;
use crate::providers::{Fetched, Granted, Inbound, Next, Page, Provider, ProviderError, Start, Token};

/// The integration name of memory calendars.
pub const INTEGRATION: &str = "memory_calendar";
const PAGE: usize = 2;

/// A calendar: its events now, the log of changes, and the epoch of its cursors (`epoch:position`;
/// cursors of an earlier epoch have expired).
#[derive(Default)]
struct Calendar {
    events: BTreeMap<String, CacheEvent>,
    log: Vec<Change>,
    epoch: u32,
}

static CALENDARS: LazyLock<Mutex<HashMap<String, Calendar>>> = LazyLock::new(Default::default);

fn with<T>(calendar: &str, f: impl FnOnce(&mut Calendar) -> T) -> T {
    f(CALENDARS.lock().unwrap().entry(calendar.to_string()).or_default())
}

/// Adds or replaces an event of `calendar`.
pub fn put(calendar: &str, event: CacheEvent) {
    with(calendar, |c| {
        c.log.push(Change::Upsert(event.clone()));
        c.events.insert(event.external_id.clone(), event);
    })
}

/// Deletes an event of `calendar`.
pub fn remove(calendar: &str, external_id: &str) {
    with(calendar, |c| {
        c.events.remove(external_id);
        c.log.push(Change::Remove {
            external_id: external_id.into(),
            cancelled: true,
            ical_uid: None,
        });
    })
}

/// Makes every cursor of `calendar` handed out so far invalid (the next sync lists in full).
pub fn expire_cursors(calendar: &str) {
    with(calendar, |c| c.epoch += 1)
}

/// Builds the memory provider (its `REGISTRY` entry).
pub fn provider(_: &Http, _: &Config) -> Arc<dyn Provider> {
    Arc::new(Memory)
}

struct Memory;

#[async_trait]
impl Provider for Memory {
    fn integration(&self) -> &'static str {
        INTEGRATION
    }
    fn label(&self) -> &'static str {
        "memory"
    }
    fn endpoints(&self) -> &'static [&'static str] {
        &[]
    }
    fn expiry_unit_ms(&self) -> i64 {
        1
    }
    async fn refresh(&self, _refresh_token: &str) -> Result<Token, ProviderError> {
        Ok(Token {
            access_token: "memory-access".into(),
            expires_in: Some(3600),
            scope: None,
            token_type: None,
            refresh_token: None,
        })
    }
    fn delegation_platform(&self) -> &'static str {
        "memory"
    }
    fn delegation_subject(&self, user_email: &str) -> String {
        user_email.into()
    }
    async fn delegated_token(&self, _key: &serde_json::Value, _subject: &str) -> Result<Token, ProviderError> {
        Err(ProviderError::Config("memory calendars have no delegation".into()))
    }

    async fn list(
        &self,
        _access: &str,
        calendar: &Target<'_>,
        start: Start<'_>,
        page: Option<&str>,
        _tz: Tz,
    ) -> Result<Page, ProviderError> {
        with(calendar.external_id, |c| {
            // A listing is a range of changes: the events now for a full one, the log since the cursor.
            let (changes, end): (Vec<Change>, usize) = match start {
                Start::Full { .. } => (c.events.values().cloned().map(Change::Upsert).collect(), c.log.len()),
                Start::Since(cursor) => {
                    let (epoch, at) = cursor
                        .split_once(':')
                        .and_then(|(e, p)| Some((e.parse::<u32>().ok()?, p.parse::<usize>().ok()?)))
                        .ok_or_else(|| ProviderError::Decode("not a memory cursor".into()))?;
                    if epoch != c.epoch || at > c.log.len() {
                        return Err(ProviderError::SyncTokenInvalid);
                    }
                    (c.log[at..].to_vec(), c.log.len())
                }
            };
            let offset: usize = page
                .map_or(Ok(0), str::parse)
                .map_err(|_| ProviderError::Decode("not a page".into()))?;
            let next = if offset + PAGE < changes.len() {
                Next::Page((offset + PAGE).to_string())
            } else {
                Next::Done(Some(format!("{}:{end}", c.epoch)))
            };
            Ok(Page {
                changes: changes.into_iter().skip(offset).take(PAGE).collect(),
                time_zone: None,
                next,
            })
        })
    }

    async fn get_event(
        &self,
        _access: &str,
        calendar: &Target<'_>,
        event_id: &str,
        _tz: Tz,
    ) -> Result<Fetched, ProviderError> {
        Ok(with(calendar.external_id, |c| match c.events.get(event_id) {
            Some(e) => Fetched::Listed(Box::new(Change::Upsert(e.clone()))),
            None => Fetched::Gone,
        }))
    }
    fn keeps_app_ical_uid(&self) -> bool {
        true
    }
    fn in_legacy_cache(&self) -> bool {
        false
    }
    fn watchable(&self, _external_id: &str) -> bool {
        true
    }
    fn names_channels(&self) -> bool {
        true
    }
    fn channel_ttl(&self) -> Duration {
        Duration::from_secs(7 * 86_400)
    }
    async fn open_channel(&self, _access: &str, calendar: &Target<'_>, channel_id: &str) -> Result<Granted> {
        Ok(Granted {
            id: channel_id.into(),
            kind: "memory",
            resource_id: calendar.external_id.into(),
            resource_uri: None,
            expiration: Some(crate::time::now_db() + chrono::Duration::days(7)),
        })
    }
    fn renews_in_place(&self) -> bool {
        false
    }
    async fn renew_channel(&self, _access: &str, _channel_id: &str) -> Result<Option<NaiveDateTime>, ProviderError> {
        Err(ProviderError::NotFound)
    }
    fn stops_by_resource(&self) -> bool {
        false
    }
    async fn stop_channel(&self, _access: &str, _channel_id: &str, _resource_id: &str) -> Result<(), ProviderError> {
        Ok(())
    }
    async fn find_channels(&self, _access: &str, _calendar: &Target<'_>) -> Result<Vec<String>, ProviderError> {
        Ok(Vec::new())
    }

    fn read_webhook(&self, _req: &Request) -> Inbound {
        let reason = "the memory provider sends no notifications";
        Inbound::answer("malformed", Response::json(400, "rejected", Some(reason)), reason)
    }

    fn batches_notices(&self) -> bool {
        false
    }
}
