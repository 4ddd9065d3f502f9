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
}

/// A provider event whose times calsync cannot read. It is never taken as free: the sync fails, and
/// the message names what was wrong, never the event's contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unreadable(pub &'static str);

impl From<Unreadable> for crate::providers::ProviderError {
    fn from(u: Unreadable) -> Self {
        crate::providers::ProviderError::Decode(u.0.to_string())
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
}

impl Change {
    /// The provider's id of the event.
    pub fn external_id(&self) -> &str {
        match self {
            Change::Upsert(e) => &e.external_id,
            Change::Remove { external_id, .. } => external_id,
        }
    }
}
