//! Two-way sync (SPEC §5): what a sync found of the app's own bookings, written to the outbox in
//! the sync's transaction. calsync never invents a cancellation:
//!
//! - A booking is reported **cancelled** only when the provider, asked for that very event
//!   (`events.get`, Graph's `GET …/events/{id}`), says it is gone (404, 410) or cancelled. A listing
//!   alone never decides it: an event that turned free (transparent, declined, show-as-free) is
//!   still listed; one moved beyond a full sync's window is missing from it without being gone;
//!   Graph's windowed delta reports such a move as `@removed`.
//! - **Moves** are reported from the organizer's copy only (Google's `organizer.self`, Graph's
//!   `isOrganizer`); a cancellation from any copy only once the provider says the event itself is
//!   cancelled or gone — never because an attendee removed their own copy (Google then keeps the
//!   event, cancelled for that attendee only, and calls the copy not the organizer's).
//! - An event is one of the app's bookings when its iCalUID is `<uid>@cal.com` (Google, where the
//!   app chooses the iCalUID) or when Cal.com's `"BookingReference"` names it for this calendar
//!   (Outlook: Exchange generates the iCalUID, so the event id the app stored is the only link).

use std::collections::HashMap;

use chrono::NaiveDateTime;
use chrono_tz::Tz;
use futures_util::stream::{self, StreamExt};

use super::run::Run;
use super::{Engine, Restart};
use crate::db::bookings::{self, Cached, Scope};
use crate::db::calendars::Group;
use crate::db::outbox::Found;
use crate::model::Change;
use crate::providers::{Fetched, ProviderError};

/// The iCalUID suffix of the app's bookings.
pub const BOOKING_SUFFIX: &str = "@cal.com";

/// How many events a sync asks the provider about at once when it checks its bookings.
const CHECKS_AT_ONCE: usize = 4;

/// What a sync saw of an event that is one of the app's bookings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// The organizer's copy, busy at these times.
    At {
        uid: String,
        start: NaiveDateTime,
        end: NaiveDateTime,
    },
    /// Listed, and nothing to report: it turned free, or it is an attendee's copy.
    Present,
    /// The listing says it was cancelled or removed (the booking uid when known): checked with the
    /// provider before anything is reported.
    Cancelled(Option<String>),
}

/// The two-way-sync view of a change, given the booking uid of its event (`None`: not known to be
/// a booking). `None` for a change that concerns no booking.
pub fn seen(change: &Change, uid: Option<&str>) -> Option<Seen> {
    match change {
        Change::Upsert(e) => uid.map(|uid| match e.organizer {
            true => Seen::At {
                uid: uid.to_string(),
                start: e.start,
                end: e.end,
            },
            false => Seen::Present,
        }),
        Change::Remove { cancelled: true, .. } => Some(Seen::Cancelled(uid.map(str::to_string))),
        Change::Remove { .. } => uid.map(|_| Seen::Present),
        // Providers of whole resources do not take part in two-way sync.
        Change::Resource { .. } => None,
    }
}

/// The booking uid an iCalUID carries, if it is one of the app's.
pub fn uid_of(ical_uid: Option<&str>) -> Option<&str> {
    ical_uid
        .and_then(|u| u.strip_suffix(BOOKING_SUFFIX))
        .filter(|u| !u.is_empty())
}

/// The finding once the provider has been asked about an event: `uid` is the booking's uid when
/// already known, else the event's iCalUID may tell it. `None`: not a booking after all.
fn checked(fetched: Fetched, uid: Option<&str>) -> Option<Seen> {
    match fetched {
        Fetched::Gone => uid.map(|u| Seen::Cancelled(Some(u.to_string()))),
        Fetched::Cancelled { organizer, ical_uid } => {
            let uid = uid.or(uid_of(ical_uid.as_deref()))?;
            Some(match organizer {
                true => Seen::Cancelled(Some(uid.to_string())),
                false => Seen::Present,
            })
        }
        Fetched::Listed(change) => {
            let uid = uid.or(match &*change {
                Change::Upsert(e) => uid_of(e.ical_uid.as_deref()),
                Change::Remove { ical_uid, .. } => uid_of(ical_uid.as_deref()),
                Change::Resource { .. } => None,
            });
            Some(seen(&change, uid).unwrap_or(Seen::Present)).filter(|_| uid.is_some())
        }
    }
}

/// At most this many deletions of events not known to be bookings are checked per sync (Google's
/// deletions carry no iCalUID; one of a booking that was free, so never cached, is known only by
/// asking; one cached as no booking is not asked about). Beyond it such deletions go unreported
/// rather than delay the sync.
const UNKNOWN_CHECKS: usize = 100;

/// The scope of the calendar's bookings; `keeps_uid`: its provider keeps the iCalUID the app gives
/// an event (else only the app's booking references mark its bookings).
pub fn scope(group: &Group, keeps_uid: bool) -> Scope<'_> {
    Scope {
        owner: &group.owner_id,
        integration: &group.integration,
        credential_id: group.credential_id,
        delegation_id: group.delegation_id.as_deref(),
        external_id: &group.external_id,
        uid_suffix: keeps_uid.then_some(BOOKING_SUFFIX),
    }
}

impl Engine {
    /// The scope of the group's bookings, as its provider marks them.
    fn booking_scope<'a>(&self, group: &'a Group) -> Scope<'a> {
        scope(
            group,
            self.provider(&group.integration).is_ok_and(|p| p.keeps_app_ical_uid()),
        )
    }

    /// Takes one page of changes into the run's bookings (the last change of an id winning). The
    /// booking uid of an event comes from its iCalUID, else from the app's `"BookingReference"`
    /// (one lookup a page, only for calendars whose iCalUIDs cannot carry it).
    pub(super) async fn note_bookings(&self, run: &mut Run<'_>, changes: &[&Change]) -> Result<(), Restart> {
        let scope = self.booking_scope(run.group);
        let referenced = if scope.uid_suffix.is_none() {
            let mut ids: Vec<String> = Vec::with_capacity(changes.len());
            for c in changes {
                ids.push(c.external_id().to_string());
                if let Change::Upsert(e) = c {
                    ids.extend(e.recurring_event_id.clone());
                }
            }
            bookings::referenced(&self.pool, &scope, &ids).await?
        } else {
            HashMap::new()
        };
        for change in changes {
            let ext = change.external_id();
            let uid = match change {
                Change::Upsert(e) => uid_of(e.ical_uid.as_deref())
                    .or_else(|| referenced.get(ext).map(String::as_str))
                    .or_else(|| {
                        e.recurring_event_id
                            .as_ref()
                            .and_then(|r| referenced.get(r))
                            .map(String::as_str)
                    }),
                Change::Remove { ical_uid, .. } => {
                    uid_of(ical_uid.as_deref()).or_else(|| referenced.get(ext).map(String::as_str))
                }
                Change::Resource { .. } => None,
            };
            match seen(change, uid) {
                Some(b) => run.bookings.insert(ext.to_string(), b),
                None => run.bookings.remove(ext),
            };
        }
        Ok(())
    }

    /// Before the commit: the cached booking rows the run concerns, and the provider asked about
    /// every booking the run would otherwise call cancelled — those the listing said were removed,
    /// and, after a full sync, those it no longer listed inside its window. What the provider says
    /// replaces the guess. Returns the cached rows, for [`found`].
    pub(super) async fn check_bookings(
        &self,
        run: &mut Run<'_>,
        access: &str,
    ) -> Result<HashMap<String, Cached>, Restart> {
        let group = run.group;
        let keys: Vec<String> = run.bookings.keys().cloned().collect();
        let old = bookings::cached(&self.pool, &self.booking_scope(group), run.full, &keys).await?;
        let window = run.full.then(|| self.window(run.stamp));
        // Deletions of events whose booking is not known can be asked about only where an
        // iCalUID marks bookings (a reference would have named it), and only incrementally (a full
        // listing carries no deletions).
        let unknown = match self.booking_scope(group).uid_suffix {
            Some(_) if !run.full => UNKNOWN_CHECKS,
            _ => 0,
        };
        let mut ask: Vec<(String, Option<String>)> = Vec::new(); // (event id, booking uid)
        let mut unknown_ids: Vec<String> = Vec::new();
        for (ext, seen) in &run.bookings {
            if let Seen::Cancelled(uid) = seen {
                match old.get(ext).map(|c| &c.uid).or(uid.as_ref()) {
                    Some(uid) => ask.push((ext.clone(), Some(uid.clone()))),
                    None if unknown_ids.len() < unknown => unknown_ids.push(ext.clone()),
                    None => {}
                }
            }
        }
        // A deletion of an event cached as no booking is known not to be one.
        let not_bookings = bookings::cached_ids(&self.pool, &group.owner_id, &unknown_ids).await?;
        ask.extend(
            unknown_ids
                .into_iter()
                .filter(|id| !not_bookings.contains(id))
                .map(|id| (id, None)),
        );
        if let Some((from, to)) = window {
            for (ext, c) in &old {
                // A row outside the listed window was never expected in the listing.
                if !run.bookings.contains_key(ext) && c.start >= from && c.end <= to {
                    ask.push((ext.clone(), Some(c.uid.clone())));
                }
            }
        }
        let tz = run.tz;
        let answers: Vec<Result<(String, Option<Seen>), ProviderError>> = stream::iter(ask)
            .map(|(ext, uid)| async move {
                let found = self.check_event(group, access, &ext, tz).await?;
                Ok((ext, checked(found, uid.as_deref())))
            })
            .buffer_unordered(CHECKS_AT_ONCE)
            .collect()
            .await;
        for answer in answers {
            match answer? {
                (ext, Some(seen)) => run.bookings.insert(ext, seen),
                (ext, None) => run.bookings.remove(&ext),
            };
        }
        Ok(old)
    }

    /// Asks the provider for one event of the group's calendar.
    async fn check_event(&self, group: &Group, access: &str, event_id: &str, tz: Tz) -> Result<Fetched, ProviderError> {
        let provider = self
            .provider(&group.integration)
            .map_err(|e| ProviderError::Config(e.to_string()))?;
        provider.get_event(access, &group.target(), event_id, tz).await
    }
}

/// The booking changes of a sync: what it saw (`bookings`, checked) against the cached rows of the
/// bookings it touched (`old`, by event id). An event seen for the first time counts in an
/// incremental sync (it may have moved before calsync first saw it), not in a full one (which sees
/// every event of its window). Sorted by event id.
pub fn found(bookings: &HashMap<String, Seen>, old: &HashMap<String, Cached>, full: bool) -> Vec<Found> {
    let found = |external_id: &str, uid: &str, span: Option<(NaiveDateTime, NaiveDateTime)>| Found {
        external_id: external_id.to_string(),
        uid: uid.to_string(),
        start: span.map(|s| s.0),
        end: span.map(|s| s.1),
        cancelled: span.is_none(),
    };
    let mut out = Vec::new();
    for (ext, seen) in bookings {
        match (seen, old.get(ext)) {
            (Seen::Present, _) => {}
            (Seen::At { uid, start, end }, Some(c)) if &c.uid == uid && c.start == *start && c.end == *end => {}
            (Seen::At { .. }, None) if full => {}
            (Seen::At { uid, start, end }, _) => out.push(found(ext, uid, Some((*start, *end)))),
            (Seen::Cancelled(_), Some(c)) => out.push(found(ext, &c.uid, None)),
            (Seen::Cancelled(Some(uid)), None) => out.push(found(ext, uid, None)),
            (Seen::Cancelled(None), None) => {}
        }
    }
    out.sort_by(|a, b| a.external_id.cmp(&b.external_id));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::CacheEvent;

    fn at(h: u32) -> NaiveDateTime {
        chrono::NaiveDate::from_ymd_opt(2026, 12, 1)
            .unwrap()
            .and_hms_opt(h, 0, 0)
            .unwrap()
    }

    fn busy(organizer: bool) -> Change {
        Change::Upsert(CacheEvent {
            external_id: "x".into(),
            etag: String::new(),
            ical_uid: Some("abc@cal.com".into()),
            ical_sequence: 0,
            summary: None,
            description: None,
            location: None,
            start: at(9),
            end: at(10),
            is_all_day: false,
            time_zone: None,
            status: "confirmed",
            recurring_event_id: None,
            original_start: None,
            external_created: None,
            external_updated: None,
            organizer,
        })
    }

    #[test]
    fn what_a_change_says_of_a_booking() {
        assert!(matches!(seen(&busy(true), Some("abc")), Some(Seen::At { .. })));
        assert_eq!(
            seen(&busy(false), Some("abc")),
            Some(Seen::Present),
            "an attendee's copy"
        );
        assert_eq!(seen(&busy(true), None), None, "not a booking");
        let gone = |cancelled| Change::Remove {
            external_id: "x".into(),
            cancelled,
            ical_uid: None,
        };
        assert_eq!(seen(&gone(true), None), Some(Seen::Cancelled(None)));
        assert_eq!(
            seen(&gone(false), Some("b1")),
            Some(Seen::Present),
            "turned free, not cancelled"
        );
        assert_eq!(seen(&gone(false), None), None);
        assert_eq!(uid_of(Some("abc@cal.com")), Some("abc"));
        assert_eq!(uid_of(Some("abc@google.com")), None);
        assert_eq!(uid_of(Some("@cal.com")), None);
    }

    #[test]
    fn checked_events_decide_cancellations() {
        let cancelled = |organizer, uid: Option<&str>| Fetched::Cancelled {
            organizer,
            ical_uid: uid.map(str::to_string),
        };
        let gone = Some(Seen::Cancelled(Some("u".into())));
        assert_eq!(checked(Fetched::Gone, Some("u")), gone);
        assert_eq!(checked(Fetched::Gone, None), None, "gone, and never known as a booking");
        assert_eq!(checked(cancelled(true, None), Some("u")), gone);
        assert_eq!(
            checked(cancelled(true, Some("u@cal.com")), None),
            gone,
            "the iCalUID tells the booking"
        );
        assert_eq!(checked(cancelled(true, Some("u@google.com")), None), None);
        assert_eq!(
            checked(cancelled(false, None), Some("u")),
            Some(Seen::Present),
            "an attendee's copy"
        );
        assert!(matches!(
            checked(Fetched::Listed(Box::new(busy(true))), Some("u")),
            Some(Seen::At { .. })
        ));
        let free = Change::Remove {
            external_id: "x".into(),
            cancelled: false,
            ical_uid: None,
        };
        assert_eq!(checked(Fetched::Listed(Box::new(free)), Some("u")), Some(Seen::Present));
    }

    #[test]
    fn booking_changes_against_the_cached_rows() {
        let seen_at = |uid: &str, h| Seen::At {
            uid: uid.into(),
            start: at(h),
            end: at(h + 1),
        };
        let cached = |uid: &str, h| Cached {
            uid: uid.into(),
            start: at(h),
            end: at(h + 1),
        };
        let bookings = HashMap::from([
            ("moved".to_string(), seen_at("m", 11)),
            ("same".to_string(), seen_at("s", 9)),
            ("new".to_string(), seen_at("n", 14)),
            ("deleted".to_string(), Seen::Cancelled(None)),
            ("free".to_string(), Seen::Present),
            ("not-a-booking".to_string(), Seen::Cancelled(None)),
        ]);
        let old = HashMap::from([
            ("moved".to_string(), cached("m", 10)),
            ("same".to_string(), cached("s", 9)),
            ("deleted".to_string(), cached("d", 12)),
            ("free".to_string(), cached("f", 15)),
        ]);
        let summary = |found: Vec<Found>| -> Vec<(String, String, bool)> {
            found.into_iter().map(|f| (f.external_id, f.uid, f.cancelled)).collect()
        };
        let s = |e: &str, u: &str, c| (e.to_string(), u.to_string(), c);
        assert_eq!(
            summary(found(&bookings, &old, false)),
            vec![s("deleted", "d", true), s("moved", "m", false), s("new", "n", false)]
        );
        // A full sync saw every event of its window: new ones are not news.
        assert_eq!(
            summary(found(&bookings, &old, true)),
            vec![s("deleted", "d", true), s("moved", "m", false)]
        );
    }
}
