//! Microsoft Graph v1.0 JSON shapes, only the fields calsync reads.

use serde::Deserialize;

/// One page of `calendarView/delta`.
#[derive(Debug, Deserialize)]
pub struct DeltaPage {
    #[serde(default)]
    pub value: Vec<Event>,
    #[serde(rename = "@odata.nextLink")]
    pub next_link: Option<String>,
    #[serde(rename = "@odata.deltaLink")]
    pub delta_link: Option<String>,
}

/// An event instance (single, occurrence or exception), or a removal marker.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub id: String,
    #[serde(rename = "@removed")]
    pub removed: Option<serde_json::Value>,
    pub subject: Option<String>,
    pub body_preview: Option<String>,
    pub location: Option<Location>,
    pub start: Option<DateTimeZone>,
    pub end: Option<DateTimeZone>,
    pub is_all_day: Option<bool>,
    /// The zone the event was created in (all-day events are placed on its midnights).
    pub original_start_time_zone: Option<String>,
    pub original_end_time_zone: Option<String>,
    pub is_cancelled: Option<bool>,
    /// Whether the mailbox's owner organizes the event (the organizer's copy).
    pub is_organizer: Option<bool>,
    pub show_as: Option<String>,
    #[serde(rename = "iCalUId")]
    pub ical_uid: Option<String>,
    pub change_key: Option<String>,
    pub series_master_id: Option<String>,
    pub original_start: Option<String>,
    pub created_date_time: Option<String>,
    pub last_modified_date_time: Option<String>,
}

/// `{ dateTime, timeZone }`: a wall-clock time without offset and the zone it is in.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DateTimeZone {
    pub date_time: String,
    pub time_zone: Option<String>,
}

/// An event location.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Location {
    pub display_name: Option<String>,
}

/// A subscription as Graph returns it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    pub id: String,
    pub resource: Option<String>,
    pub expiration_date_time: Option<String>,
    #[serde(default)]
    pub notification_url: Option<String>,
}

/// A page of `GET /subscriptions`.
#[derive(Debug, Deserialize)]
pub struct SubscriptionPage {
    #[serde(default)]
    pub value: Vec<Subscription>,
    #[serde(rename = "@odata.nextLink")]
    pub next_link: Option<String>,
}

/// A change or lifecycle notification item.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    pub subscription_id: Option<String>,
    pub client_state: Option<String>,
    pub change_type: Option<String>,
    pub lifecycle_event: Option<String>,
}

/// A notification POST body.
#[derive(Debug, Deserialize)]
pub struct Notifications {
    pub value: Vec<serde_json::Value>,
}

/// The `code` of a Graph error body, or the `error` of an OAuth error body.
pub fn error_code(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let err = v.get("error")?;
    if let Some(s) = err.as_str() {
        return Some(s.to_string());
    }
    err.get("code")?.as_str().map(str::to_string)
}
