//! Outlook's busy rules (SPEC §5): `showAs` busy/tentative/oof (and workingElsewhere, when
//! configured) block time; `free` does not; cancelled or removed events go. Graph times come as an
//! offset-less wall-clock time (up to 7 fractional digits) plus a zone name, which may be a Windows
//! name ("Pacific Standard Time") or an IANA one; both are converted to UTC.

use chrono::NaiveDateTime;
use chrono_tz::Tz;

use super::wire::{DateTimeZone, Event};
use crate::model::{CacheEvent, Change, Unreadable};
use crate::time::{local_to_utc, parse_instant};

/// Options of the busy rules.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub working_elsewhere_is_busy: bool,
}

/// The zone for a Graph time zone name: IANA names parse directly, Windows names through CLDR's table.
pub fn zone(name: &str) -> Option<Tz> {
    let name = name.trim();
    if name.is_empty() || name.eq_ignore_ascii_case("UTC") || name == "tzone://Microsoft/Utc" {
        return Some(Tz::UTC);
    }
    crate::time::zone_named(name)
}

/// A Graph `{ dateTime, timeZone }` as UTC.
pub fn to_utc(t: &DateTimeZone) -> Option<NaiveDateTime> {
    if let Some(x) = parse_instant(&t.date_time) {
        return Some(x); // carries its own offset
    }
    let naive = NaiveDateTime::parse_from_str(&t.date_time, "%Y-%m-%dT%H:%M:%S%.f").ok()?;
    let tz = zone(t.time_zone.as_deref().unwrap_or("UTC"))?;
    let utc = local_to_utc(tz, naive);
    let extra = utc.and_utc().timestamp_subsec_nanos() % 1_000_000;
    Some(utc - chrono::Duration::nanoseconds(extra as i64))
}

/// Maps one delta item. An event whose times cannot be read is never called free: it is an error
/// (the sync fails and the calendar reads `sync_failed`) — except an all-day event whose zone is
/// unknown, which is stored conservatively, busy across every zone's reading of its dates.
pub fn map_event(ev: &Event, rules: Rules) -> Result<Change, Unreadable> {
    map_readable(ev, rules).map(Change::storable)
}

fn map_readable(ev: &Event, rules: Rules) -> Result<Change, Unreadable> {
    let remove = |cancelled| Change::Remove {
        external_id: ev.id.clone(),
        cancelled,
        ical_uid: ev.ical_uid.clone(),
    };
    if ev.removed.is_some() || ev.is_cancelled == Some(true) {
        return Ok(remove(true));
    }
    let tentative = match ev.show_as.as_deref() {
        Some("free") => return Ok(remove(false)),
        Some("workingElsewhere") if !rules.working_elsewhere_is_busy => return Ok(remove(false)),
        Some("tentative") => true,
        _ => false,
    };
    let (Some(start), Some(end)) = (ev.start.as_ref(), ev.end.as_ref()) else {
        return Err(Unreadable("an Outlook event without start or end"));
    };
    let all_day = ev.is_all_day == Some(true);
    let (s, e) = if all_day {
        all_day_span(
            start,
            end,
            ev.original_start_time_zone.as_deref(),
            ev.original_end_time_zone.as_deref(),
        )?
    } else {
        match (to_utc(start), to_utc(end)) {
            (Some(s), Some(e)) => (s, e),
            _ => return Err(Unreadable("an Outlook event time or time zone calsync cannot read")),
        }
    };
    if e <= s {
        return Ok(remove(false));
    }
    Ok(Change::Upsert(CacheEvent {
        external_id: ev.id.clone(),
        etag: ev.change_key.clone().unwrap_or_default(),
        ical_uid: ev.ical_uid.clone(),
        ical_sequence: 0,
        summary: ev.subject.clone(),
        description: ev.body_preview.clone(),
        location: ev.location.as_ref().and_then(|l| l.display_name.clone()),
        start: s,
        end: e,
        is_all_day: ev.is_all_day.unwrap_or(false),
        time_zone: if all_day {
            ev.original_start_time_zone.clone()
        } else {
            start.time_zone.clone()
        },
        status: if tentative { "tentative" } else { "confirmed" },
        recurring_event_id: ev.series_master_id.clone(),
        original_start: ev.original_start.as_deref().and_then(parse_instant),
        external_created: ev.created_date_time.as_deref().and_then(parse_instant),
        organizer: ev.is_organizer.unwrap_or(true),
        external_updated: ev.last_modified_date_time.as_deref().and_then(parse_instant),
    }))
}

/// An all-day event's span. Graph sends all-day events as floating dates — local midnights,
/// unconverted, labelled with whatever zone was asked for — so they are placed on the midnights of
/// the zone the event was created in (`originalStartTimeZone`). When that zone is unknown (a custom
/// `tzone://` zone), the span covers every reading of the dates: from the start date's midnight at
/// UTC+14 to the end date's midnight at UTC−12.
fn all_day_span(
    start: &DateTimeZone,
    end: &DateTimeZone,
    start_zone: Option<&str>,
    end_zone: Option<&str>,
) -> Result<(NaiveDateTime, NaiveDateTime), Unreadable> {
    let midnight = |t: &DateTimeZone| {
        chrono::NaiveDate::parse_from_str(t.date_time.get(..10).unwrap_or(""), "%Y-%m-%d")
            .map(|d| d.and_time(chrono::NaiveTime::MIN))
            .map_err(|_| Unreadable("an Outlook all-day event's dates calsync cannot read"))
    };
    let (s, e) = (midnight(start)?, midnight(end)?);
    match (start_zone.and_then(zone), end_zone.or(start_zone).and_then(zone)) {
        (Some(sz), Some(ez)) => Ok((local_to_utc(sz, s), local_to_utc(ez, e))),
        _ => Ok((s - chrono::Duration::hours(14), e + chrono::Duration::hours(12))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The mapping of a readable event.
    fn map_event(ev: &Event, rules: Rules) -> Change {
        super::map_event(ev, rules).expect("readable")
    }

    fn all_day(zone: Option<&str>) -> Event {
        Event {
            id: "a".into(),
            is_all_day: Some(true),
            start: Some(dt("2026-05-15T00:00:00.0000000", "UTC")),
            end: Some(dt("2026-05-16T00:00:00.0000000", "UTC")),
            original_start_time_zone: zone.map(str::to_string),
            original_end_time_zone: zone.map(str::to_string),
            ..Default::default()
        }
    }

    fn span(c: Change) -> (NaiveDateTime, NaiveDateTime) {
        match c {
            Change::Upsert(e) => (e.start, e.end),
            other => panic!("not busy: {other:?}"),
        }
    }

    #[test]
    fn all_day_events_sit_on_the_midnights_of_their_own_zone() {
        let rules = Rules {
            working_elsewhere_is_busy: true,
        };
        // Graph labels the floating dates with the requested zone (UTC); the event is Pacific.
        assert_eq!(
            span(map_event(&all_day(Some("Pacific Standard Time")), rules)),
            (utc("2026-05-15T07:00:00Z"), utc("2026-05-16T07:00:00Z"))
        );
        assert_eq!(
            span(map_event(&all_day(Some("India Standard Time")), rules)),
            (utc("2026-05-14T18:30:00Z"), utc("2026-05-15T18:30:00Z"))
        );
        // An unknown zone: busy across every zone's reading of the date, never less.
        assert_eq!(
            span(map_event(&all_day(Some("tzone://Microsoft/Custom")), rules)),
            (utc("2026-05-14T10:00:00Z"), utc("2026-05-16T12:00:00Z"))
        );
    }

    #[test]
    fn unreadable_timed_events_are_errors_not_free() {
        let rules = Rules {
            working_elsewhere_is_busy: true,
        };
        let ev = Event {
            id: "t".into(),
            start: Some(dt("2026-05-15T09:00:00.0000000", "tzone://Microsoft/Custom")),
            end: Some(dt("2026-05-15T10:00:00.0000000", "tzone://Microsoft/Custom")),
            ..Default::default()
        };
        assert!(super::map_event(&ev, rules).is_err());
        let garbled = Event {
            id: "t".into(),
            start: Some(dt("tomorrow", "UTC")),
            end: Some(dt("2026-05-15T10:00:00.0000000", "UTC")),
            ..Default::default()
        };
        assert!(super::map_event(&garbled, rules).is_err());
    }

    fn dt(s: &str, tz: &str) -> DateTimeZone {
        DateTimeZone {
            date_time: s.into(),
            time_zone: Some(tz.into()),
        }
    }

    fn utc(s: &str) -> NaiveDateTime {
        parse_instant(s).unwrap()
    }

    #[test]
    fn graph_times_with_windows_and_iana_zones() {
        assert_eq!(
            to_utc(&dt("2026-03-01T10:00:00.0000000", "UTC")),
            Some(utc("2026-03-01T10:00:00Z"))
        );
        assert_eq!(
            to_utc(&dt("2026-07-01T10:00:00.0000000", "Pacific Standard Time")),
            Some(utc("2026-07-01T17:00:00Z"))
        );
        assert_eq!(
            to_utc(&dt("2026-01-15T09:30:00.1234567", "W. Europe Standard Time")),
            Some(utc("2026-01-15T08:30:00.123Z"))
        );
        assert_eq!(
            to_utc(&dt("2026-07-01T10:00:00", "Asia/Kolkata")),
            Some(utc("2026-07-01T04:30:00Z"))
        );
        assert_eq!(to_utc(&dt("2026-07-01T10:00:00", "Mars/Olympus_Mons")), None);
        assert!(zone("India Standard Time").is_some() && zone("Tokyo Standard Time").is_some());
    }

    #[test]
    fn busy_rules() {
        let rules = Rules {
            working_elsewhere_is_busy: true,
        };
        let ev = |show: &str| Event {
            id: "x".into(),
            show_as: Some(show.into()),
            start: Some(dt("2026-03-01T10:00:00.0000000", "UTC")),
            end: Some(dt("2026-03-01T11:00:00.0000000", "UTC")),
            ..Default::default()
        };
        for busy in ["busy", "oof", "workingElsewhere", "unknown"] {
            assert!(matches!(map_event(&ev(busy), rules), Change::Upsert(_)), "{busy}");
        }
        assert!(matches!(
            map_event(&ev("tentative"), rules),
            Change::Upsert(CacheEvent {
                status: "tentative",
                ..
            })
        ));
        assert!(matches!(
            map_event(&ev("free"), rules),
            Change::Remove { cancelled: false, .. }
        ));
        let relaxed = Rules {
            working_elsewhere_is_busy: false,
        };
        assert!(matches!(
            map_event(&ev("workingElsewhere"), relaxed),
            Change::Remove { .. }
        ));
        let mut cancelled = ev("busy");
        cancelled.is_cancelled = Some(true);
        assert!(matches!(
            map_event(&cancelled, rules),
            Change::Remove { cancelled: true, .. }
        ));
        let removed = Event {
            id: "x".into(),
            removed: Some(serde_json::json!({"reason": "deleted"})),
            ..Default::default()
        };
        assert!(matches!(
            map_event(&removed, rules),
            Change::Remove { cancelled: true, .. }
        ));
    }
}
