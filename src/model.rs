//! Provider-neutral rows the sync engine writes: what providers map to and the database stores.

use chrono::NaiveDateTime;

/// One busy event as a `CalendarCacheEvent` row holds it (times in UTC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEvent {
    pub external_id: String,
    pub etag: String,
    pub ical_uid: Option<String>,
    pub ical_sequence: i32,
    pub summary: Option<String>,
    pub description: Option<String>,
    pub location: Option<String>,
    pub start: NaiveDateTime,
    pub end: NaiveDateTime,
    pub is_all_day: bool,
    pub time_zone: Option<String>,
    /// `confirmed` or `tentative` (cancelled events are never stored).
    pub status: &'static str,
    pub recurring_event_id: Option<String>,
    pub original_start: Option<NaiveDateTime>,
    pub external_created: Option<NaiveDateTime>,
    pub external_updated: Option<NaiveDateTime>,
    /// Not stored: this calendar's copy is the organizer's (Google's `organizer.self`, Graph's
    /// `isOrganizer`; true when the provider does not say). Two-way sync reports moves of the
    /// app's bookings from the organizer's copy only.
    pub organizer: bool,
}

/// A provider event whose times calsync cannot read. It is never taken as free: the sync fails, and
/// the message names what was wrong, never the event's contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unreadable(pub &'static str);

impl From<Unreadable> for crate::error::ProviderError {
    fn from(u: Unreadable) -> Self {
        crate::error::ProviderError::Decode(u.0.to_string())
    }
}

/// What a provider event means for the cache.
// Changes live for one page and are mostly upserts: boxing them would cost an allocation per event.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Busy: insert or update the row.
    Upsert(CacheEvent),
    /// Free or gone: delete the row if there is one.
    Remove {
        external_id: String,
        /// True when the event itself was cancelled or deleted (not merely free).
        cancelled: bool,
        ical_uid: Option<String>,
    },
    /// Every row of one provider resource is replaced by `rows` (none: it is gone or free). A
    /// resource is an object that expands to many rows, such as a CalDAV event with its recurrence;
    /// its rows carry it as `recurring_event_id`.
    Resource { resource: String, rows: Vec<CacheEvent> },
}

/// `s` as Postgres `text` can hold it: without U+0000 (real Google events carry it, for example in
/// the `iCalUID` of invitations that came from Exchange). Every other character a Rust string can
/// hold, Postgres can too (a lone surrogate never reaches here: see `providers::http::decode`).
pub fn storable(s: String) -> String {
    if s.contains('\0') {
        s.replace('\0', "")
    } else {
        s
    }
}

fn storable_opt(s: Option<String>) -> Option<String> {
    s.map(storable)
}

impl Change {
    /// The change with every provider string made storable ([`storable`]); the mappers return
    /// their changes through it, so nothing unstorable reaches the database.
    pub fn storable(self) -> Change {
        match self {
            Change::Upsert(e) => Change::Upsert(e.storable()),
            Change::Resource { resource, rows } => Change::Resource {
                resource: storable(resource),
                rows: rows.into_iter().map(CacheEvent::storable).collect(),
            },
            Change::Remove {
                external_id,
                cancelled,
                ical_uid,
            } => Change::Remove {
                external_id: storable(external_id),
                cancelled,
                ical_uid: storable_opt(ical_uid),
            },
        }
    }

    /// The provider's id of the event (of the resource, for [`Change::Resource`]).
    pub fn external_id(&self) -> &str {
        match self {
            Change::Upsert(e) => &e.external_id,
            Change::Remove { external_id, .. } => external_id,
            Change::Resource { resource, .. } => resource,
        }
    }
}

impl CacheEvent {
    /// The row with every provider string made storable ([`storable`]).
    pub fn storable(self) -> CacheEvent {
        CacheEvent {
            external_id: storable(self.external_id),
            etag: storable(self.etag),
            ical_uid: storable_opt(self.ical_uid),
            summary: storable_opt(self.summary),
            description: storable_opt(self.description),
            location: storable_opt(self.location),
            time_zone: storable_opt(self.time_zone),
            recurring_event_id: storable_opt(self.recurring_event_id),
            ..self
        }
    }
}

/// Why a calendar is not answered from the cache; the caller falls back to a live provider call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Uncached {
    /// No such `SelectedCalendar` row.
    NotFound,
    /// An integration calsync does not sync.
    UnsupportedProvider,
    /// `calendar-subscription-cache` is off for the calendar's user.
    FlagOff,
    /// The credential is marked invalid.
    CredentialInvalid,
    /// No live channel / subscription.
    NotSubscribed,
    /// No sync has completed yet.
    NeverSynced,
    /// The last sync attempt failed.
    SyncFailed,
    /// Neither a sync nor a channel confirmation within the staleness limit.
    Stale,
    /// The requested range is not inside the window the last full sync covered (for a calendar
    /// read from the legacy JSON cache: it ends after the window of the legacy row's key).
    OutOfWindow,
    /// Read from the legacy JSON cache (`calendar-cache-sql` off for the user): it holds no live
    /// row for the key the legacy reader looks up (or the calendar is not a Google one, which it
    /// never held).
    LegacyMiss,
    /// Read from the legacy JSON cache: its row does not answer for the calendar (malformed, the
    /// calendar missing from it, or Google reported an error for the calendar).
    LegacyUnreadable,
}

impl Uncached {
    /// Every reason, for metrics that start each at 0.
    pub const ALL: [Uncached; 11] = [
        Uncached::NotFound,
        Uncached::UnsupportedProvider,
        Uncached::FlagOff,
        Uncached::CredentialInvalid,
        Uncached::NotSubscribed,
        Uncached::NeverSynced,
        Uncached::SyncFailed,
        Uncached::Stale,
        Uncached::OutOfWindow,
        Uncached::LegacyMiss,
        Uncached::LegacyUnreadable,
    ];

    /// The machine-readable reason string.
    pub fn as_str(self) -> &'static str {
        match self {
            Uncached::NotFound => "not_found",
            Uncached::UnsupportedProvider => "unsupported_provider",
            Uncached::FlagOff => "flag_off",
            Uncached::CredentialInvalid => "credential_invalid",
            Uncached::NotSubscribed => "not_subscribed",
            Uncached::NeverSynced => "never_synced",
            Uncached::SyncFailed => "sync_failed",
            Uncached::Stale => "stale",
            Uncached::OutOfWindow => "out_of_window",
            Uncached::LegacyMiss => "legacy_miss",
            Uncached::LegacyUnreadable => "legacy_unreadable",
        }
    }
}

/// A provider calendar as a provider call addresses it.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The provider's calendar id (`SelectedCalendar.externalId`).
    pub external_id: &'a str,
    /// Whom an organisation's delegation credential acts for when it gives the access: the user's
    /// email (`None`: the user's own grant).
    pub acting_for: Option<&'a str>,
    /// The calendar owner's email (`users.email`; empty when not known): whose own answer to an
    /// invitation counts, for providers whose events do not say which attendee is the owner.
    pub user_email: &'a str,
}

/// The parts of an HTTP request a route hands over.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Header names lower-cased.
    pub headers: std::collections::HashMap<String, String>,
    /// The raw query string (without `?`).
    pub query: String,
    /// The raw body.
    pub body: String,
}

impl Request {
    /// Builds a request from loosely typed JS values: a headers object whose values are strings or
    /// arrays of strings (the first is used), an optional query string and body.
    pub fn from_json(v: &serde_json::Value) -> Self {
        let mut headers = std::collections::HashMap::new();
        if let Some(obj) = v.get("headers").and_then(|h| h.as_object()) {
            for (k, val) in obj {
                let text = match val {
                    serde_json::Value::String(s) => Some(s.clone()),
                    serde_json::Value::Array(a) => a.first().and_then(|x| x.as_str()).map(str::to_string),
                    serde_json::Value::Number(n) => Some(n.to_string()),
                    _ => None,
                };
                if let Some(t) = text {
                    headers.insert(k.to_ascii_lowercase(), t);
                }
            }
        }
        let text = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or_default().to_string();
        Request {
            headers,
            query: text("query").trim_start_matches('?').to_string(),
            body: text("body"),
        }
    }

    /// A header by (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }
}

/// A webhook's answer, which the route sends back verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Response {
    /// The headers to send: the content type, and `X-Content-Type-Options: nosniff` so that no
    /// browser ever reads an echoed body (Graph's validation token) as anything but its type.
    pub fn headers(&self) -> [(&'static str, &'static str); 2] {
        [
            ("Content-Type", self.content_type),
            ("X-Content-Type-Options", "nosniff"),
        ]
    }

    /// A JSON response `{"status": outcome}` (plus a message for errors).
    pub fn json(status: u16, outcome: &str, message: Option<&str>) -> Self {
        let mut body = serde_json::json!({ "status": outcome });
        if let Some(m) = message {
            body["message"] = serde_json::json!(m);
        }
        Response {
            status,
            content_type: "application/json",
            body: body.to_string(),
        }
    }

    /// A plain-text response (a handshake's echo).
    pub fn text(status: u16, body: String) -> Self {
        Response {
            status,
            content_type: "text/plain",
            body,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_is_dropped_from_every_string() {
        let t = chrono::NaiveDate::from_ymd_opt(2026, 1, 1)
            .unwrap()
            .and_hms_opt(9, 0, 0)
            .unwrap();
        let nul = |s: &str| Some(format!("{s}\0x"));
        let ev = CacheEvent {
            external_id: "id\0".into(),
            etag: "\0e".into(),
            ical_uid: nul("uid"),
            ical_sequence: 0,
            summary: nul("s"),
            description: nul("d"),
            location: nul("l"),
            start: t,
            end: t,
            is_all_day: false,
            time_zone: nul("z"),
            status: "confirmed",
            recurring_event_id: nul("r"),
            original_start: None,
            external_created: None,
            external_updated: None,
            organizer: true,
        };
        let Change::Upsert(out) = Change::Upsert(ev).storable() else {
            unreachable!()
        };
        let text = format!("{out:?}");
        assert!(!text.contains("\\0"), "{text}");
        assert_eq!(out.external_id, "id");
        assert_eq!(out.ical_uid.as_deref(), Some("uidx"));
        let gone = Change::Remove {
            external_id: "a\0b".into(),
            cancelled: true,
            ical_uid: nul("u"),
        }
        .storable();
        assert_eq!(gone.external_id(), "ab");
    }

    #[test]
    fn loose_js_headers() {
        let r = Request::from_json(
            &serde_json::json!({"headers": {"X-Goog-Channel-ID": ["a", "b"], "x-num": 5, "bad": {}}, "query": "?a=1"}),
        );
        assert_eq!(r.header("x-goog-channel-id"), Some("a"));
        assert_eq!(r.header("X-NUM"), Some("5"));
        assert_eq!(r.header("bad"), None);
        assert_eq!(r.query, "a=1");
    }
}
