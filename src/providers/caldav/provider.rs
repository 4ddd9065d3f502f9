//! CalDAV as a [`Provider`]: listings from `sync-collection` tokens (falling back to an ETag
//! listing where a server has none), objects fetched in `calendar-multiget` pages, busy time
//! expanded in Rust, no push channels (polling), and a password decrypted from Cal.com's key
//! instead of OAuth.

use std::time::Duration;

use async_trait::async_trait;
use chrono::NaiveDateTime;
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::dav::{self, Member};
use super::ical::{busy_rows, Context};
use super::key::{decrypt, key_bytes, Account};
use super::{Caldav, Call, APPLE};
use crate::error::{Error, Result};
use crate::model::{Change, Request, Response, Target};
use crate::providers::{Fetched, Granted, Inbound, Next, Page, Provider, ProviderError, Start, Token};

/// Where a listing stands between pages, and the cursor it ends with: the collection's sync token
/// (none: the server has no `sync-collection`), the window busy time is expanded in, the
/// calendar's zone, and the members still to fetch.
#[derive(Debug, Serialize, Deserialize)]
struct Cursor {
    #[serde(rename = "t")]
    token: Option<String>,
    from: NaiveDateTime,
    to: NaiveDateTime,
    #[serde(rename = "z")]
    zone: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    todo: Vec<String>,
}

impl Cursor {
    fn zone(&self) -> Tz {
        self.zone.parse().unwrap_or(Tz::UTC)
    }

    fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    fn decode(s: &str) -> Result<Self, ProviderError> {
        // A cursor calsync did not write (or an older form) is simply expired: list in full.
        serde_json::from_str(s).map_err(|_| ProviderError::SyncTokenInvalid)
    }
}

impl Caldav {
    fn account(access: &str) -> Result<Account, ProviderError> {
        serde_json::from_str(access).map_err(|_| ProviderError::Config("the CalDAV access is not an account".into()))
    }

    /// The calendar's zone from its `calendar-timezone` property, if it names one calsync knows.
    async fn zone(&self, account: &Account, url: &str) -> Result<Option<Tz>, ProviderError> {
        let reply = self
            .dav(account, Call::Props, url, "0", dav::CALENDAR_PROPS.to_string())
            .await?;
        let ms = expect_multistatus(&reply)?;
        let tz = ms
            .members
            .iter()
            .find_map(|m| m.calendar_timezone.as_deref())
            .and_then(zone_of_vtimezone);
        Ok(tz)
    }

    /// The members changed since `token` (all members for none) and the new token; `Ok(None)` when
    /// the server has no `sync-collection`.
    async fn changes(
        &self,
        account: &Account,
        url: &str,
        token: Option<&str>,
    ) -> Result<Option<(Vec<Member>, Option<String>)>, ProviderError> {
        let mut members = Vec::new();
        let mut from = token.map(str::to_string);
        // A server may truncate a long answer (RFC 6578 §3.6: a 507 on the collection itself) and
        // expects the client to ask again from the token it gave; the rest follows.
        for _ in 0..10_000 {
            match self
                .changes_once(account, url, from.as_deref(), token.is_some())
                .await?
            {
                None => return Ok(None),
                Some(ms) => {
                    let truncated = ms.members.iter().any(|m| m.status == Some(507) && !is_object(m, url));
                    members.extend(ms.members.into_iter().filter(|m| is_object(m, url)));
                    match ms.sync_token {
                        Some(next) if truncated && from.as_deref() != Some(next.as_str()) => from = Some(next),
                        next => return Ok(Some((members, next))),
                    }
                }
            }
        }
        Err(ProviderError::Decode(
            "a CalDAV server kept truncating its sync-collection answer".into(),
        ))
    }

    /// One `sync-collection` request (`None`: the server has none). `incremental`: the listing
    /// started from a stored token (whose refusal means it expired).
    async fn changes_once(
        &self,
        account: &Account,
        url: &str,
        token: Option<&str>,
        incremental: bool,
    ) -> Result<Option<dav::Multistatus>, ProviderError> {
        let reply = self
            .dav(account, Call::Sync, url, "0", dav::sync_collection(token.unwrap_or("")))
            .await?;
        match reply.status.as_u16() {
            207 => Ok(Some(dav::parse_multistatus(&reply.body)?)),
            // Radicale answers 403, Xandikos 412, others 409: each naming the precondition.
            403 | 409 | 412 if incremental && dav::names_invalid_token(&reply.body) => {
                Err(ProviderError::SyncTokenInvalid)
            }
            // No RFC 6578 here (403 naming the supported-report precondition, or a plain refusal of
            // the method or body): list by ETag instead.
            403 if !incremental && String::from_utf8_lossy(&reply.body).contains("supported-report") => Ok(None),
            400 | 405 | 415 | 501 if !incremental => Ok(None),
            _ => Err(refused(&reply)),
        }
    }

    /// Every member of the collection by a Depth 1 `PROPFIND` (servers without `sync-collection`).
    async fn members(&self, account: &Account, url: &str) -> Result<Vec<Member>, ProviderError> {
        let body = r#"<?xml version="1.0" encoding="utf-8"?><d:propfind xmlns:d="DAV:"><d:prop><d:getetag/></d:prop></d:propfind>"#;
        let reply = self.dav(account, Call::Props, url, "1", body.to_string()).await?;
        Ok(expect_multistatus(&reply)?.members)
    }

    /// Fetches one page of members and maps them to changes.
    async fn fetch(
        &self,
        account: &Account,
        url: &str,
        hrefs: &[String],
        cursor: &Cursor,
        owner: &str,
    ) -> Result<Vec<Change>, ProviderError> {
        if hrefs.is_empty() {
            return Ok(Vec::new());
        }
        let reply = self
            .dav(
                account,
                Call::Multiget,
                url,
                "1",
                dav::multiget(hrefs.iter().map(String::as_str)),
            )
            .await?;
        let ms = expect_multistatus(&reply)?;
        let zone = cursor.zone();
        let owner = Some(owner).filter(|o| !o.is_empty());
        let mut found = std::collections::HashMap::new();
        for m in ms.members {
            found.insert(dav::path_of(&m.href), m);
        }
        let mut changes = Vec::with_capacity(hrefs.len());
        for href in hrefs {
            let rows = match found.get(&dav::path_of(href)) {
                Some(Member {
                    calendar_data: Some(data),
                    etag,
                    ..
                }) => {
                    let ctx = Context {
                        href,
                        etag: etag.as_deref().unwrap_or(""),
                        zone,
                        owner_email: owner,
                        from: cursor.from,
                        to: cursor.to,
                    };
                    busy_rows(data, &ctx)?
                }
                // Deleted between the listing and the fetch.
                Some(Member { status: Some(404), .. }) => Vec::new(),
                // Anything else without data (missing from the answer, refused, failed) is never
                // taken as free: the sync fails.
                _ => {
                    return Err(ProviderError::Decode(
                        "a CalDAV server returned no calendar data for a changed object".into(),
                    ))
                }
            };
            changes.push(
                Change::Resource {
                    resource: href.clone(),
                    rows,
                }
                .storable(),
            );
        }
        Ok(changes)
    }
}

fn expect_multistatus(reply: &crate::providers::http::Reply) -> Result<dav::Multistatus, ProviderError> {
    match reply.status.as_u16() {
        207 => dav::parse_multistatus(&reply.body),
        _ => Err(refused(reply)),
    }
}

/// A refused WebDAV request. Only 401 says the password is wrong (the engine asks once more, then
/// marks the credential invalid); a 403 concerns this calendar (no longer shared, an ACL), not
/// the account.
fn refused(reply: &crate::providers::http::Reply) -> ProviderError {
    match reply.status.as_u16() {
        401 => ProviderError::Unauthorized,
        404 => ProviderError::NotFound,
        _ => crate::providers::http::rejected(reply, None),
    }
}

/// The zone a `calendar-timezone` value (a VCALENDAR with one VTIMEZONE) names, if calsync knows it.
fn zone_of_vtimezone(text: &str) -> Option<Tz> {
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let find = |name: &str| {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.split_once(':')).map(|(_, v)| v))
    };
    [find("TZID"), find("X-LIC-LOCATION")]
        .into_iter()
        .flatten()
        .find_map(super::ical::zone_by_name)
}

/// The collection that holds a calendar collection: its URL without the last path segment.
fn parent(url: &str) -> Option<String> {
    let mut u = reqwest::Url::parse(url).ok()?;
    let path = u.path().trim_end_matches('/').to_string();
    let cut = path.rfind('/')?;
    u.set_path(&format!("{}/", &path[..cut]));
    Some(u.to_string())
}

/// A member that is a calendar object, not the collection itself.
fn is_object(m: &Member, collection: &str) -> bool {
    !m.href.is_empty() && !m.href.ends_with('/') && !collection.ends_with(&m.href)
}

#[async_trait]
impl Provider for Caldav {
    fn integration(&self) -> &'static str {
        self.integration
    }

    fn label(&self) -> &'static str {
        if self.is_apple() {
            "apple"
        } else {
            "caldav"
        }
    }

    fn endpoints(&self) -> &'static [&'static str] {
        if self.is_apple() {
            &["apple.propfind", "apple.sync-collection", "apple.multiget"]
        } else {
            &["caldav.propfind", "caldav.sync-collection", "caldav.multiget"]
        }
    }

    fn key_access(&self, key: &serde_json::Value) -> Option<Result<String>> {
        Some((|| {
            let secret = self.cfg.encryption_key.as_ref().ok_or_else(|| {
                Error::ProviderConfig(
                    "CALENDSO_ENCRYPTION_KEY is not configured: CalDAV credentials cannot be read".into(),
                )
            })?;
            let cipher_key = key_bytes(secret.expose()).map_err(|e| Error::ProviderConfig(e.to_string()))?;
            let mut account = decrypt(key, &cipher_key).map_err(|e| Error::ProviderAuth(e.to_string()))?;
            if self.integration == APPLE {
                account.url = Some(self.cfg.apple_url.clone());
            }
            serde_json::to_string(&account).map_err(|_| Error::ProviderAuth("unreadable CalDAV account".into()))
        })())
    }

    fn expiry_unit_ms(&self) -> i64 {
        1
    }

    async fn refresh(&self, _refresh_token: &str) -> Result<Token, ProviderError> {
        Err(ProviderError::Config(
            "CalDAV credentials hold a password, not a refresh token".into(),
        ))
    }

    fn delegation_platform(&self) -> &'static str {
        self.label()
    }

    fn delegation_subject(&self, user_email: &str) -> String {
        user_email.to_string()
    }

    async fn delegated_token(&self, _key: &serde_json::Value, _subject: &str) -> Result<Token, ProviderError> {
        Err(ProviderError::Config(
            "CalDAV calendars have no delegation credentials".into(),
        ))
    }

    async fn list(
        &self,
        access: &str,
        calendar: &Target<'_>,
        start: Start<'_>,
        page: Option<&str>,
        tz: Tz,
    ) -> Result<Page, ProviderError> {
        let account = Self::account(access)?;
        let url = calendar.external_id;
        let (mut cursor, mut changes) = match (page, start) {
            (Some(p), _) => (Cursor::decode(p)?, Vec::new()),
            (None, Start::Full { from, to }) => {
                // Else the user's, which the engine starts a polled calendar's listing from.
                let zone = self.zone(&account, url).await?.unwrap_or(tz);
                let (members, token) = match self.changes(&account, url, None).await? {
                    Some((members, token)) => (members, token),
                    None => (self.members(&account, url).await?, None),
                };
                let todo = members
                    .into_iter()
                    // Radicale lists members deleted long ago as 404 even on a first sync.
                    .filter(|m| is_object(m, url) && m.status != Some(404))
                    .map(|m| m.href)
                    .collect();
                let cursor = Cursor {
                    token,
                    from,
                    to,
                    zone: zone.name().to_string(),
                    todo,
                };
                (cursor, Vec::new())
            }
            (None, Start::Since(c)) => {
                let mut cursor = Cursor::decode(c)?;
                let Some(token) = cursor.token.clone() else {
                    return Err(ProviderError::SyncTokenInvalid);
                };
                let (members, next) = self
                    .changes(&account, url, Some(&token))
                    .await?
                    .ok_or(ProviderError::SyncTokenInvalid)?;
                // The last word on each member counts (a long answer may name one twice).
                let mut last: Vec<Member> = Vec::new();
                let mut at: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
                for m in members {
                    match at.get(&dav::path_of(&m.href)) {
                        Some(&i) => last[i] = m,
                        None => {
                            at.insert(dav::path_of(&m.href), last.len());
                            last.push(m);
                        }
                    }
                }
                let mut gone = Vec::new();
                for m in last {
                    match m.status {
                        Some(404) => gone.push(Change::Resource {
                            resource: m.href,
                            rows: Vec::new(),
                        }),
                        _ => cursor.todo.push(m.href),
                    }
                }
                cursor.token = next.or(Some(token));
                (cursor, gone)
            }
        };
        let take = cursor.todo.len().min(self.cfg.page_size.max(1));
        let batch: Vec<String> = cursor.todo.drain(..take).collect();
        changes.extend(self.fetch(&account, url, &batch, &cursor, calendar.user_email).await?);
        let time_zone = Some(cursor.zone());
        let next = if cursor.todo.is_empty() {
            // No token (an ETag listing): every later sync lists in full.
            Next::Done(cursor.token.is_some().then(|| cursor.encode()))
        } else {
            Next::Page(cursor.encode())
        };
        Ok(Page {
            changes,
            time_zone,
            next,
        })
    }

    async fn unchanged(&self, access: &str, calendars: &[(&str, &str)]) -> Result<Vec<bool>, ProviderError> {
        let account = Self::account(access)?;
        let mut out = vec![false; calendars.len()];
        // Calendars by the collection that holds them (the account's calendar home).
        let mut homes: std::collections::BTreeMap<String, Vec<usize>> = std::collections::BTreeMap::new();
        for (i, (url, _)) in calendars.iter().enumerate() {
            if let Some(home) = parent(url) {
                homes.entry(home).or_default().push(i);
            }
        }
        for (home, members) in homes {
            let body = r#"<?xml version="1.0" encoding="utf-8"?><d:propfind xmlns:d="DAV:"><d:prop><d:sync-token/></d:prop></d:propfind>"#;
            let reply = self.dav(&account, Call::Props, &home, "1", body.to_string()).await?;
            let tokens: std::collections::HashMap<String, String> = expect_multistatus(&reply)?
                .members
                .into_iter()
                .filter_map(|m| Some((m.href.trim_end_matches('/').to_string(), m.sync_token?)))
                .collect();
            for i in members {
                let (url, cursor) = calendars[i];
                let path = reqwest::Url::parse(url)
                    .map(|u| u.path().trim_end_matches('/').to_string())
                    .unwrap_or_default();
                let stored = Cursor::decode(cursor).ok().and_then(|c| c.token);
                out[i] = stored.is_some() && tokens.get(&path) == stored.as_ref();
            }
        }
        Ok(out)
    }

    async fn get_event(
        &self,
        _access: &str,
        _calendar: &Target<'_>,
        _event_id: &str,
        _tz: Tz,
    ) -> Result<Fetched, ProviderError> {
        Err(ProviderError::Config("CalDAV events are not fetched one by one".into()))
    }

    fn keeps_app_ical_uid(&self) -> bool {
        true
    }

    fn in_legacy_cache(&self) -> bool {
        false
    }

    fn reports_bookings(&self) -> bool {
        false
    }

    fn watchable(&self, _external_id: &str) -> bool {
        false
    }

    fn names_channels(&self) -> bool {
        false
    }

    fn channel_ttl(&self) -> Duration {
        Duration::ZERO
    }

    async fn open_channel(&self, _access: &str, _calendar: &Target<'_>, _channel_id: &str) -> Result<Granted> {
        Err(Error::invalid(
            "CalDAV calendars have no push channels; they are polled",
        ))
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
        let reason = "CalDAV servers send no notifications; the calendars are polled";
        Inbound::answer("malformed", Response::json(404, "rejected", Some(reason)), reason)
    }

    fn batches_notices(&self) -> bool {
        false
    }
}
