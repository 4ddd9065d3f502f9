//! Google's busy rules (SPEC §5): which events block time, and the cache row each one becomes.
//!
//! Removed (free or gone): `status=cancelled`; `transparency=transparent`; the owner's own attendee
//! entry `declined` (when `declined_is_free`); `eventType=workingLocation`. Busy: everything else,
//! including `outOfOffice` and `focusTime`. All-day events (`start.date`) span local midnight to
//! midnight in the calendar's time zone, not UTC.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use chrono_tz::Tz;

use super::wire::{Event, EventTime};
use crate::model::{CacheEvent, Change, Unreadable};
pub use crate::time::{local_to_utc, parse_instant};

/// Options of the busy rules.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub declined_is_free: bool,
}

/// Maps one event of a calendar whose time zone is `calendar_tz`.
///
/// An event whose times cannot be read is never called free: it is an error (the sync fails and the
/// calendar reads `sync_failed`).
pub fn map_event(ev: &Event, calendar_tz: Tz, rules: Rules) -> Result<Change, Unreadable> {
    map_readable(ev, calendar_tz, rules).map(Change::storable)
}

fn map_readable(ev: &Event, calendar_tz: Tz, rules: Rules) -> Result<Change, Unreadable> {
    let remove = |cancelled| Change::Remove {
        external_id: ev.id.clone(),
        cancelled,
        ical_uid: ev.ical_uid.clone(),
    };
    if ev.status.as_deref() == Some("cancelled") {
        return Ok(remove(true));
    }
    let free = ev.transparency.as_deref() == Some("transparent")
        || ev.event_type.as_deref() == Some("workingLocation")
        || (rules.declined_is_free
            && ev
                .attendees
                .iter()
                .any(|a| a.is_self && a.response_status.as_deref() == Some("declined")));
    if free {
        return Ok(remove(false));
    }
    let (Some(start), Some(end)) = (ev.start.as_ref(), ev.end.as_ref()) else {
        return Err(Unreadable("a Google event without start or end"));
    };
    let (Some(s), Some(e)) = (to_utc(start, calendar_tz), to_utc(end, calendar_tz)) else {
        return Err(Unreadable("a Google event time or time zone calsync cannot read"));
    };
    if e <= s {
        return Ok(remove(false)); // zero-length events block nothing
    }
    Ok(Change::Upsert(CacheEvent {
        external_id: ev.id.clone(),
        etag: ev.etag.clone().unwrap_or_default(),
        ical_uid: ev.ical_uid.clone(),
        ical_sequence: ev.sequence.unwrap_or(0),
        summary: ev.summary.clone(),
        description: ev.description.clone(),
        location: ev.location.clone(),
        start: s,
        end: e,
        is_all_day: start.date.is_some(),
        time_zone: start.time_zone.clone().or_else(|| Some(calendar_tz.name().to_string())),
        status: if ev.status.as_deref() == Some("tentative") {
            "tentative"
        } else {
            "confirmed"
        },
        recurring_event_id: ev.recurring_event_id.clone(),
        original_start: ev.original_start_time.as_ref().and_then(|t| to_utc(t, calendar_tz)),
        external_created: ev.created.as_deref().and_then(parse_instant),
        external_updated: ev.updated.as_deref().and_then(parse_instant),
        organizer: ev.organizer.as_ref().is_none_or(|o| o.is_self),
    }))
}

/// A Google time as a UTC timestamp: `dateTime` with its offset (or, without one, in its `timeZone`),
/// or `date` as local midnight in the calendar's zone.
pub fn to_utc(t: &EventTime, calendar_tz: Tz) -> Option<NaiveDateTime> {
    if let Some(dt) = t.date_time.as_deref() {
        if let Some(x) = parse_instant(dt) {
            return Some(x);
        }
        let naive = NaiveDateTime::parse_from_str(dt, "%Y-%m-%dT%H:%M:%S%.f").ok()?;
        // A named zone calsync does not know is unreadable, not the calendar's zone.
        let tz = match t.time_zone.as_deref() {
            Some(z) => z.parse::<Tz>().ok()?,
            None => calendar_tz,
        };
        return Some(local_to_utc(tz, naive));
    }
    let date = NaiveDate::parse_from_str(t.date.as_deref()?, "%Y-%m-%d").ok()?;
    Some(local_to_utc(calendar_tz, date.and_time(NaiveTime::MIN)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The mapping of a readable event.
    fn map_event(ev: &Event, tz: Tz, rules: Rules) -> Change {
        super::map_event(ev, tz, rules).expect("readable")
    }

    #[test]
    fn unreadable_times_or_zones_are_errors_not_free() {
        let ev = |start: EventTime| Event {
            id: "x".into(),
            start: Some(start),
            end: Some(EventTime {
                date_time: Some("2026-05-15T10:00:00Z".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        for start in [
            EventTime {
                date_time: Some("15/05/2026 09:00".into()),
                ..Default::default()
            },
            EventTime {
                date_time: Some("2026-05-15T09:00:00".into()),
                time_zone: Some("Mars/Olympus_Mons".into()),
                ..Default::default()
            },
        ] {
            assert!(super::map_event(&ev(start), Tz::UTC, RULES).is_err());
        }
        let no_end = Event {
            id: "x".into(),
            ..Default::default()
        };
        assert!(super::map_event(&no_end, Tz::UTC, RULES).is_err());
    }
    use crate::providers::google::wire::Attendee;

    const RULES: Rules = Rules { declined_is_free: true };

    fn timed(id: &str, s: &str, e: &str) -> Event {
        Event {
            id: id.into(),
            status: Some("confirmed".into()),
            etag: Some("\"1\"".into()),
            start: Some(EventTime {
                date_time: Some(s.into()),
                ..Default::default()
            }),
            end: Some(EventTime {
                date_time: Some(e.into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn utc(s: &str) -> NaiveDateTime {
        parse_instant(s).unwrap()
    }

    fn upserted(c: Change) -> CacheEvent {
        match c {
            Change::Upsert(e) => e,
            other => panic!("expected busy, got {other:?}"),
        }
    }

    #[test]
    fn timed_event_with_offset_is_busy_in_utc() {
        let mut ev = timed("a", "2026-03-01T10:00:00+01:00", "2026-03-01T11:30:00+01:00");
        ev.sequence = Some(3);
        ev.ical_uid = Some("abc@cal.com".into());
        ev.created = Some("2026-01-01T00:00:00.123456Z".into());
        let row = upserted(map_event(&ev, Tz::UTC, RULES));
        assert_eq!(row.start, utc("2026-03-01T09:00:00Z"));
        assert_eq!(row.end, utc("2026-03-01T10:30:00Z"));
        assert_eq!((row.ical_sequence, row.status, row.is_all_day), (3, "confirmed", false));
        assert_eq!(row.external_created, Some(utc("2026-01-01T00:00:00.123Z")));
    }

    #[test]
    fn free_and_cancelled_events_are_removed() {
        let base = timed("a", "2026-03-01T10:00:00Z", "2026-03-01T11:00:00Z");
        let is_removed = |ev: &Event, cancelled: bool| {
            assert_eq!(
                map_event(ev, Tz::UTC, RULES),
                Change::Remove {
                    external_id: "a".into(),
                    cancelled,
                    ical_uid: None
                }
            )
        };
        let mut ev = timed("a", "2026-03-01T10:00:00Z", "2026-03-01T11:00:00Z");
        ev.status = Some("cancelled".into());
        is_removed(&ev, true);
        let mut ev = timed("a", "2026-03-01T10:00:00Z", "2026-03-01T11:00:00Z");
        ev.transparency = Some("transparent".into());
        is_removed(&ev, false);
        let mut ev = timed("a", "2026-03-01T10:00:00Z", "2026-03-01T11:00:00Z");
        ev.event_type = Some("workingLocation".into());
        is_removed(&ev, false);
        let mut ev = timed("a", "2026-03-01T10:00:00Z", "2026-03-01T11:00:00Z");
        ev.attendees = vec![
            Attendee {
                is_self: false,
                response_status: Some("declined".into()),
            },
            Attendee {
                is_self: true,
                response_status: Some("declined".into()),
            },
        ];
        is_removed(&ev, false);
        // ... unless declined events are configured to stay busy.
        assert!(matches!(
            map_event(
                &ev,
                Tz::UTC,
                Rules {
                    declined_is_free: false
                }
            ),
            Change::Upsert(_)
        ));
        // Another attendee's decline does not free the owner.
        ev.attendees.pop();
        assert!(matches!(map_event(&ev, Tz::UTC, RULES), Change::Upsert(_)));
        for kind in ["outOfOffice", "focusTime", "default"] {
            let mut ev = timed("a", "2026-03-01T10:00:00Z", "2026-03-01T11:00:00Z");
            ev.event_type = Some(kind.into());
            assert!(matches!(map_event(&ev, Tz::UTC, RULES), Change::Upsert(_)), "{kind}");
        }
        let mut tentative = base;
        tentative.status = Some("tentative".into());
        assert_eq!(upserted(map_event(&tentative, Tz::UTC, RULES)).status, "tentative");
    }

    #[test]
    fn all_day_spans_local_midnights_of_the_calendar_zone() {
        let ev = Event {
            id: "d".into(),
            start: Some(EventTime {
                date: Some("2026-07-04".into()),
                ..Default::default()
            }),
            end: Some(EventTime {
                date: Some("2026-07-05".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let row = upserted(map_event(&ev, "America/Los_Angeles".parse().unwrap(), RULES));
        assert!(row.is_all_day);
        assert_eq!(row.start, utc("2026-07-04T07:00:00Z"));
        assert_eq!(row.end, utc("2026-07-05T07:00:00Z"));
        // Across a DST change the day is 23 hours long.
        let ev = Event {
            id: "d".into(),
            start: Some(EventTime {
                date: Some("2026-03-29".into()),
                ..Default::default()
            }),
            end: Some(EventTime {
                date: Some("2026-03-30".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let row = upserted(map_event(&ev, "Europe/Berlin".parse().unwrap(), RULES));
        assert_eq!(row.start, utc("2026-03-28T23:00:00Z"));
        assert_eq!(row.end, utc("2026-03-29T22:00:00Z"));
    }

    #[test]
    fn gaps_and_overlaps_resolve_like_google() {
        let tz: Tz = "America/New_York".parse().unwrap();
        let gap = NaiveDate::from_ymd_opt(2026, 3, 8)
            .unwrap()
            .and_hms_opt(2, 30, 0)
            .unwrap();
        assert_eq!(local_to_utc(tz, gap), utc("2026-03-08T07:30:00Z"));
        let overlap = NaiveDate::from_ymd_opt(2026, 11, 1)
            .unwrap()
            .and_hms_opt(1, 30, 0)
            .unwrap();
        assert_eq!(local_to_utc(tz, overlap), utc("2026-11-01T05:30:00Z"));
    }
}
