//! Google Calendar v3 JSON shapes, only the fields calsync reads.

use serde::{Deserialize, Deserializer};

/// One page of `events.list`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventsPage {
    #[serde(default)]
    pub items: Vec<Event>,
    pub next_page_token: Option<String>,
    pub next_sync_token: Option<String>,
    /// The calendar's time zone: all-day events span its local midnights.
    pub time_zone: Option<String>,
}

/// An event (with `singleEvents=true`, a single occurrence).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub id: String,
    pub status: Option<String>,
    pub etag: Option<String>,
    pub summary: Option<String>,
    pub description: Option<String>,
    pub location: Option<String>,
    pub start: Option<EventTime>,
    pub end: Option<EventTime>,
    pub transparency: Option<String>,
    pub event_type: Option<String>,
    #[serde(default)]
    pub attendees: Vec<Attendee>,
    /// Who organizes the event; `self` when it is the calendar's owner (the organizer's copy).
    pub organizer: Option<Organizer>,
    #[serde(rename = "iCalUID")]
    pub ical_uid: Option<String>,
    pub sequence: Option<i32>,
    pub recurring_event_id: Option<String>,
    pub original_start_time: Option<EventTime>,
    pub created: Option<String>,
    pub updated: Option<String>,
}

/// `start` / `end` / `originalStartTime`: `date` for all-day events, else `dateTime`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventTime {
    pub date: Option<String>,
    pub date_time: Option<String>,
    pub time_zone: Option<String>,
}

/// An attendee; `self` marks the calendar's owner.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attendee {
    #[serde(rename = "self", default)]
    pub is_self: bool,
    pub response_status: Option<String>,
}

/// An event's organizer; `self` marks the calendar's owner.
#[derive(Debug, Default, Deserialize)]
pub struct Organizer {
    #[serde(rename = "self", default)]
    pub is_self: bool,
}

/// The channel `events.watch` returns.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Channel {
    pub id: String,
    pub resource_id: String,
    pub resource_uri: Option<String>,
    /// Epoch milliseconds; Google sends an int64 as a JSON string, a number is accepted too.
    #[serde(default, deserialize_with = "int64")]
    pub expiration: Option<i64>,
}

pub use crate::providers::Token;

fn int64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Int64 {
        Num(i64),
        Text(String),
    }
    match Option::<Int64>::deserialize(d)? {
        None => Ok(None),
        Some(Int64::Num(n)) => Ok(Some(n)),
        Some(Int64::Text(s)) => s.trim().parse().map(Some).map_err(serde::de::Error::custom),
    }
}

/// The `reason` of the first error in a Google error body, if any.
pub fn error_reason(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let err = v.get("error")?;
    if let Some(s) = err.as_str() {
        return Some(s.to_string()); // OAuth errors: {"error": "invalid_grant"}
    }
    err.get("errors")?.get(0)?.get("reason")?.as_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_expiration_as_string_or_number() {
        let a: Channel = serde_json::from_str(r#"{"id":"c","resourceId":"r","expiration":"1767225600000"}"#).unwrap();
        let b: Channel = serde_json::from_str(r#"{"id":"c","resourceId":"r","expiration":1767225600000}"#).unwrap();
        let c: Channel = serde_json::from_str(r#"{"id":"c","resourceId":"r"}"#).unwrap();
        assert_eq!(a.expiration, Some(1_767_225_600_000));
        assert_eq!(b.expiration, a.expiration);
        assert_eq!(c.expiration, None);
    }

    #[test]
    fn error_reasons() {
        assert_eq!(
            error_reason(br#"{"error":{"errors":[{"domain":"global","reason":"fullSyncRequired"}],"code":410}}"#)
                .as_deref(),
            Some("fullSyncRequired")
        );
        assert_eq!(
            error_reason(br#"{"error":"invalid_grant","error_description":"x"}"#).as_deref(),
            Some("invalid_grant")
        );
        assert_eq!(error_reason(b"<html>"), None);
    }
}
