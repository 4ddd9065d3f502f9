//! CalDAV calendars (Cal.com's `caldav_calendar`) and Apple iCloud (`apple_calendar`, the same
//! protocol at `caldav.icloud.com` with app-specific passwords). No push reaches a third party, so
//! they are kept fresh by polling; a poll asks `sync-collection` (RFC 6578) what changed since the
//! last token, fetches the changed objects with `calendar-multiget` in pages, and computes their
//! busy time itself ([`ical`]). A calendar is `SelectedCalendar.externalId`: the collection's URL.

pub mod dav;
pub mod ical;
mod ics;
pub mod key;
mod provider;

use std::sync::Arc;

use reqwest::Method;

use crate::config::{CaldavConfig, Config};
use crate::error::ProviderError;
use crate::providers::http::{Http, Reply};
use crate::providers::Provider;
use key::Account;

/// Cal.com's integration name for CalDAV calendars.
pub const CALDAV: &str = "caldav_calendar";
/// Cal.com's integration name for Apple iCloud calendars.
pub const APPLE: &str = "apple_calendar";

/// Builds the CalDAV provider (its [`crate::providers::REGISTRY`] entry).
pub fn caldav_provider(http: &Http, cfg: &Config) -> Arc<dyn Provider> {
    Arc::new(Caldav::new(http.clone(), cfg.caldav.clone(), CALDAV))
}

/// Builds the Apple iCloud provider (its [`crate::providers::REGISTRY`] entry).
pub fn apple_provider(http: &Http, cfg: &Config) -> Arc<dyn Provider> {
    Arc::new(Caldav::new(http.clone(), cfg.caldav.clone(), APPLE))
}

/// A CalDAV client for one integration.
pub struct Caldav {
    http: Http,
    cfg: CaldavConfig,
    integration: &'static str,
}

impl Caldav {
    fn new(http: Http, cfg: CaldavConfig, integration: &'static str) -> Self {
        Caldav { http, cfg, integration }
    }

    fn is_apple(&self) -> bool {
        self.integration == APPLE
    }

    /// Whether the account's password may be sent to `url`: only over https (plain http to this
    /// machine only, for local servers and tests), and for Apple only to Apple's CalDAV hosts.
    fn allowed(&self, url: &reqwest::Url) -> Result<(), ProviderError> {
        let host = url.host_str().unwrap_or_default();
        let local = matches!(host, "localhost" | "127.0.0.1" | "[::1]" | "::1");
        if url.scheme() != "https" && !(url.scheme() == "http" && local) {
            return Err(ProviderError::Config(
                "CalDAV calendars are reached over https only (http only on this machine)".into(),
            ));
        }
        if self.is_apple() {
            let apple = reqwest::Url::parse(&self.cfg.apple_url).ok();
            let apple_host = apple.as_ref().and_then(|u| u.host_str()).unwrap_or_default();
            // iCloud's calendars live on numbered hosts (p42-caldav.icloud.com).
            let ok = host == apple_host || (apple_host.ends_with("icloud.com") && host.ends_with(".icloud.com"));
            if !ok {
                return Err(ProviderError::Config(
                    "an Apple calendar's URL is not on Apple's CalDAV server".into(),
                ));
            }
        }
        Ok(())
    }

    /// Metric endpoint names, per integration.
    fn endpoint(&self, what: Call) -> &'static str {
        match (self.is_apple(), what) {
            (false, Call::Props) => "caldav.propfind",
            (false, Call::Sync) => "caldav.sync-collection",
            (false, Call::Multiget) => "caldav.multiget",
            (true, Call::Props) => "apple.propfind",
            (true, Call::Sync) => "apple.sync-collection",
            (true, Call::Multiget) => "apple.multiget",
        }
    }

    /// Sends a WebDAV request with the account's Basic credentials. 401 and 403 come back as
    /// `Unauthorized` unless `tolerate` says the caller reads them; other failures are replies.
    async fn dav(
        &self,
        account: &Account,
        call: Call,
        url: &str,
        depth: &str,
        body: String,
    ) -> Result<Reply, ProviderError> {
        let method = match call {
            Call::Props => Method::from_bytes(b"PROPFIND"),
            Call::Sync | Call::Multiget => Method::from_bytes(b"REPORT"),
        }
        .map_err(|_| ProviderError::Config("bad WebDAV method".into()))?;
        let url = reqwest::Url::parse(url)
            .map_err(|_| ProviderError::Config("the CalDAV calendar URL is not a URL".into()))?;
        self.allowed(&url)?;
        self.http
            .send(self.endpoint(call), || {
                self.http
                    .request(method.clone(), url.as_str())
                    .basic_auth(&account.username, Some(&account.password))
                    .header("Depth", depth)
                    .header("Content-Type", "application/xml; charset=utf-8")
                    .body(body.clone())
            })
            .await
    }
}

/// The WebDAV calls calsync makes.
#[derive(Debug, Clone, Copy)]
enum Call {
    Props,
    Sync,
    Multiget,
}
