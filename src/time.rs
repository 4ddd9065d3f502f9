//! Timestamp conventions at the boundary: ISO-8601 in, ISO-8601 UTC with milliseconds out.
//! The database holds `TIMESTAMP(3)` without time zone in UTC, i.e. [`NaiveDateTime`] values.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Datelike, NaiveDateTime, SecondsFormat, Timelike, Utc};

use crate::error::{Error, Result};

/// Parses an ISO-8601 / RFC 3339 timestamp that carries an offset (`Z` or `+hh:mm`).
pub fn parse_iso(field: &str, value: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            Error::invalid(format!(
                "{field} must be an ISO-8601 timestamp with an offset, such as 2026-01-31T09:00:00Z"
            ))
        })
}

/// Formats a database timestamp (UTC) as `2026-01-31T09:00:00.000Z`. Digits are written directly
/// (a read of a large team formats tens of thousands of these); years outside 0–9999 and leap
/// seconds, which the database never holds, go through chrono.
pub fn format_utc(t: NaiveDateTime) -> String {
    let (year, nanos) = (t.year(), t.nanosecond());
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        return t.and_utc().to_rfc3339_opts(SecondsFormat::Millis, true);
    }
    let mut out = String::with_capacity(24);
    let mut digits = |v: u32, width: u32, then: char| {
        for p in (0..width).rev() {
            out.push(char::from(b'0' + (v / 10u32.pow(p) % 10) as u8));
        }
        out.push(then);
    };
    digits(year as u32, 4, '-');
    digits(t.month(), 2, '-');
    digits(t.day(), 2, 'T');
    digits(t.hour(), 2, ':');
    digits(t.minute(), 2, ':');
    digits(t.second(), 2, '.');
    digits(nanos / 1_000_000, 3, 'Z');
    out
}

/// How far calsync's clock is shifted from the system's, in milliseconds (simulations and tests).
static OFFSET_MS: AtomicI64 = AtomicI64::new(0);

/// Shifts the clock of every calsync instance in this process by `ms` (0: the system clock). For
/// simulations and tests that need weeks to pass; providers and the emulator must be shifted alike.
pub fn set_offset_ms(ms: i64) {
    OFFSET_MS.store(ms, Ordering::Relaxed);
}

/// The current time: the system clock plus the offset (see [`set_offset_ms`]).
pub fn now_utc() -> DateTime<Utc> {
    Utc::now() + chrono::Duration::milliseconds(OFFSET_MS.load(Ordering::Relaxed))
}

/// The current time truncated to milliseconds, as `TIMESTAMP(3)` stores it.
pub fn now_db() -> NaiveDateTime {
    let now = now_utc().naive_utc();
    now - chrono::Duration::nanoseconds(now.and_utc().timestamp_subsec_nanos() as i64 % 1_000_000)
}

/// An instant as RFC 3339 UTC to the second (`2026-01-01T09:00:00Z`), as provider queries take it.
pub fn rfc3339(t: NaiveDateTime) -> String {
    t.and_utc().to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Wall-clock time in `tz` as UTC. Ambiguous times (clocks falling back) take the earlier instant;
/// times in a gap (clocks springing forward) are read with the offset in force before it, so 02:30
/// in a one-hour gap becomes 03:30 after it.
pub fn local_to_utc(tz: chrono_tz::Tz, local: NaiveDateTime) -> NaiveDateTime {
    match chrono::TimeZone::from_local_datetime(&tz, &local) {
        chrono::LocalResult::Single(t) => t.naive_utc(),
        chrono::LocalResult::Ambiguous(a, b) => a.naive_utc().min(b.naive_utc()),
        chrono::LocalResult::None => {
            // Apply the offset in force just before the gap.
            let before = chrono::TimeZone::offset_from_utc_datetime(&tz, &(local - chrono::Duration::hours(24)));
            let off = chrono::Offset::fix(&before).local_minus_utc();
            local - chrono::Duration::seconds(off as i64)
        }
    }
}

/// A time zone by its IANA name or its Windows name (`W. Europe Standard Time`, through CLDR's
/// table in `data/windows-zones.json`): Graph names zones the Windows way, and so do invitations
/// that came from Exchange into other calendars.
pub fn zone_named(name: &str) -> Option<chrono_tz::Tz> {
    static WINDOWS: std::sync::OnceLock<std::collections::HashMap<String, String>> = std::sync::OnceLock::new();
    let windows = WINDOWS.get_or_init(|| {
        #[derive(serde::Deserialize)]
        struct Table {
            zones: std::collections::HashMap<String, String>,
        }
        let table: Table =
            serde_json::from_str(include_str!("../data/windows-zones.json")).expect("data/windows-zones.json is valid");
        table.zones
    });
    let name = name.trim();
    name.parse()
        .ok()
        .or_else(|| windows.get(name).and_then(|iana| iana.parse().ok()))
}

/// An RFC 3339 instant as naive UTC with millisecond precision (what `TIMESTAMP(3)` keeps).
pub fn parse_instant(s: &str) -> Option<NaiveDateTime> {
    let t = DateTime::parse_from_rfc3339(s).ok()?.with_timezone(&Utc).naive_utc();
    let extra = t.and_utc().timestamp_subsec_nanos() % 1_000_000;
    Some(t - chrono::Duration::nanoseconds(extra as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_utc_writes_what_chrono_writes() {
        let base = chrono::NaiveDate::from_ymd_opt(1, 1, 1)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap();
        let mut t = base;
        // Steps of a prime number of milliseconds across two millennia: every field and carry.
        for _ in 0..200_000 {
            assert_eq!(format_utc(t), t.and_utc().to_rfc3339_opts(SecondsFormat::Millis, true));
            t += chrono::Duration::milliseconds(314_159_265);
        }
        let odd = chrono::NaiveDate::from_ymd_opt(2026, 2, 28)
            .unwrap()
            .and_hms_nano_opt(23, 59, 59, 999_999_999)
            .unwrap();
        assert_eq!(format_utc(odd), "2026-02-28T23:59:59.999Z");
        let far = chrono::NaiveDate::from_ymd_opt(12026, 1, 1)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap();
        assert_eq!(
            format_utc(far),
            far.and_utc().to_rfc3339_opts(SecondsFormat::Millis, true)
        );
    }

    #[test]
    fn parses_offsets_to_utc() {
        let t = parse_iso("timeMin", "2026-03-01T10:00:00+02:00").unwrap();
        assert_eq!(format_utc(t.naive_utc()), "2026-03-01T08:00:00.000Z");
    }

    #[test]
    fn rejects_naive_and_garbage() {
        assert!(parse_iso("timeMin", "2026-03-01T10:00:00").is_err());
        assert!(parse_iso("timeMin", "yesterday").is_err());
        let e = parse_iso("timeMax", "").unwrap_err();
        assert!(e.to_string().starts_with("timeMax must be"));
    }

    #[test]
    fn now_has_millisecond_precision() {
        assert_eq!(now_db().and_utc().timestamp_subsec_nanos() % 1_000_000, 0);
    }
}
