//! Cal.com's legacy JSON cache rows (`"CalendarCache"`, SPEC §8) as its readers see them: the
//! window and key a reader looks up, the Google freebusy value, the busy blocks in a value, and
//! how two answers differ.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, TimeZone, Utc};

use super::Span;

/// How long a legacy row is valid after it is written (readers require `expiresAt >= now`).
pub const TTL_DAYS: i64 = 30;

/// `[first day of this month, first day of the month after next)` at midnight UTC.
pub fn window(now: NaiveDateTime) -> (DateTime<Utc>, DateTime<Utc>) {
    let first =
        |y: i32, m: u32| Utc.from_utc_datetime(&NaiveDate::from_ymd_opt(y, m, 1).expect("a valid month").into());
    let (y, m) = (now.year(), now.month());
    let (y2, m2) = if m > 10 { (y + 1, m - 10) } else { (y, m + 2) };
    (first(y, m), first(y2, m2))
}

/// The window of the key the legacy reader looks up for a request ending at `end`, made at `now`:
/// from the first day of this month to the first day of the month two months after a base month,
/// the base being this month when `end` falls in it or the next two, else `end`'s month.
pub fn lookup_window(now: NaiveDateTime, end: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let end = end.naive_utc();
    let months = (end.year() - now.year()) * 12 + end.month() as i32 - now.month() as i32;
    let base = if (0..=2).contains(&months) { now } else { end };
    (window(now).0, window(base).1)
}

/// A calendar's entry in a legacy value: `{ "busy": [{ start, end }] }`, or Google's `errors`.
#[derive(serde::Deserialize)]
pub struct Entry<'a> {
    #[serde(borrow)]
    busy: Vec<Block<'a>>,
    #[serde(default)]
    errors: Option<Vec<serde::de::IgnoredAny>>,
}

#[derive(serde::Deserialize)]
struct Block<'a> {
    #[serde(borrow)]
    start: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    end: std::borrow::Cow<'a, str>,
}

/// The busy blocks of a calendar's entry in a legacy value (JSON text), sorted; `None` when the
/// entry is malformed or carries Google's `errors` for the calendar (its `busy` then means nothing).
pub fn busy_of(entry: &str) -> Option<Vec<Span>> {
    spans_of(serde_json::from_str(entry).ok()?)
}

pub fn spans_of(entry: Entry) -> Option<Vec<Span>> {
    if entry.errors.is_some_and(|e| !e.is_empty()) {
        return None;
    }
    let instant = |v: &str| DateTime::parse_from_rfc3339(v).ok().map(|t| t.naive_utc());
    let mut spans = entry
        .busy
        .iter()
        .map(|b| Some((instant(&b.start)?, instant(&b.end)?)))
        .collect::<Option<Vec<Span>>>()?;
    spans.sort_unstable();
    Some(spans)
}

/// An instant as JavaScript's `toISOString()` writes it (`2026-11-01T00:00:00.000Z`).
pub fn js_iso(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// The key the legacy reader looks a freebusy answer up by: `JSON.stringify({ timeMin, timeMax,
/// items })` with `items` = `[{ id }]` de-duplicated by id in their first-seen order.
pub fn key(time_min: &str, time_max: &str, calendar_ids: &[&str]) -> String {
    let mut seen = std::collections::HashSet::new();
    let items: Vec<serde_json::Value> = calendar_ids
        .iter()
        .filter(|id| seen.insert(**id))
        .map(|id| serde_json::json!({ "id": id }))
        .collect();
    // serde_json keeps insertion order only with `preserve_order`; write the object by hand.
    format!(
        "{{\"timeMin\":{},\"timeMax\":{},\"items\":{}}}",
        serde_json::Value::from(time_min),
        serde_json::Value::from(time_max),
        serde_json::Value::from(items)
    )
}

/// A Google freebusy response: `{ kind, timeMin, timeMax, calendars: { id: { busy: [...] } } }`.
pub fn value(time_min: &str, time_max: &str, busy: &[(String, Vec<(String, String)>)]) -> serde_json::Value {
    let calendars: serde_json::Map<String, serde_json::Value> = busy
        .iter()
        .map(|(id, spans)| {
            let list: Vec<serde_json::Value> = spans
                .iter()
                .map(|(s, e)| serde_json::json!({ "start": s, "end": e }))
                .collect();
            (id.clone(), serde_json::json!({ "busy": list }))
        })
        .collect();
    serde_json::json!({ "kind": "calendar#freeBusy", "timeMin": time_min, "timeMax": time_max, "calendars": calendars })
}

/// One difference between a legacy row and the SQL cache: `missing_block` (busy in the SQL cache,
/// free in the legacy row), `extra_block` (the other way round) or `different_bounds` (both busy
/// there, with other start or end). Only the calendar id and the interval, never event contents.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Divergence {
    pub calendar: String,
    pub kind: &'static str,
    pub start: String,
    pub end: String,
}

/// The parts of a legacy row `verify` compares: its window, calendars and busy blocks.
pub struct Parsed {
    pub min: DateTime<Utc>,
    pub max: DateTime<Utc>,
    pub calendars: Vec<(String, Vec<Span>)>,
}

pub fn parse_row(key: &str, value: &serde_json::Value) -> Option<Parsed> {
    let k: serde_json::Value = serde_json::from_str(key).ok()?;
    let instant = |v: &serde_json::Value| -> Option<DateTime<Utc>> {
        DateTime::parse_from_rfc3339(v.as_str()?)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    };
    let (min, max) = (instant(&k["timeMin"])?, instant(&k["timeMax"])?);
    let mut calendars = Vec::new();
    for item in k["items"].as_array()? {
        let id = item["id"].as_str()?.to_string();
        let spans = spans_of(serde::Deserialize::deserialize(&value["calendars"][&id]).ok()?)?;
        calendars.push((id, spans));
    }
    (max > min).then_some(Parsed { min, max, calendars })
}

/// The differences between the legacy blocks and the SQL cache's, both merged and clipped.
pub fn compare(calendar: &str, legacy: &[Span], sql: &[Span]) -> Vec<Divergence> {
    let overlaps = |a: &Span, b: &Span| a.0 < b.1 && b.0 < a.1;
    let div = |kind, (s, e): &Span| Divergence {
        calendar: calendar.to_string(),
        kind,
        start: crate::time::format_utc(*s),
        end: crate::time::format_utc(*e),
    };
    let mut out = Vec::new();
    for l in legacy {
        if sql.contains(l) {
            continue;
        }
        out.push(div(
            if sql.iter().any(|s| overlaps(s, l)) {
                "different_bounds"
            } else {
                "extra_block"
            },
            l,
        ));
    }
    for s in sql {
        if !legacy.iter().any(|l| overlaps(l, s)) {
            out.push(div("missing_block", s));
        }
    }
    out
}

/// `2026-11-25T09:00:00.000Z` → `2026-11-25T09:00:00Z`, as Google's freebusy writes instants.
pub fn google_instant(iso: &str) -> String {
    iso.strip_suffix(".000Z")
        .map_or_else(|| iso.to_string(), |s| format!("{s}Z"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i32, m: u32, d: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, m, d).unwrap().and_hms_opt(13, 5, 0).unwrap()
    }

    #[test]
    fn window_wraps_years_and_ignores_the_day() {
        let w = |t| {
            let (a, b) = window(t);
            (js_iso(a), js_iso(b))
        };
        assert_eq!(
            w(at(2026, 11, 24)),
            ("2026-11-01T00:00:00.000Z".into(), "2027-01-01T00:00:00.000Z".into())
        );
        assert_eq!(
            w(at(2026, 12, 31)),
            ("2026-12-01T00:00:00.000Z".into(), "2027-02-01T00:00:00.000Z".into())
        );
        assert_eq!(
            w(at(2028, 2, 29)),
            ("2028-02-01T00:00:00.000Z".into(), "2028-04-01T00:00:00.000Z".into())
        );
        assert_eq!(
            w(at(2027, 1, 31)),
            ("2027-01-01T00:00:00.000Z".into(), "2027-03-01T00:00:00.000Z".into())
        );
    }

    #[test]
    fn lookup_window_widens_to_the_months_the_writer_covers() {
        let end = |y, m, d| {
            NaiveDate::from_ymd_opt(y, m, d)
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap()
                .and_utc()
        };
        let w = |now, e| {
            let (a, b) = lookup_window(now, e);
            (js_iso(a), js_iso(b))
        };
        // Ending this month or in the next two: the window the writer writes.
        let written = ("2026-11-01T00:00:00.000Z".into(), "2027-01-01T00:00:00.000Z".into());
        assert_eq!(w(at(2026, 11, 24), end(2026, 11, 30)), written);
        assert_eq!(w(at(2026, 11, 24), end(2027, 1, 15)), written);
        // Further out: based on the end's month.
        assert_eq!(
            w(at(2026, 11, 24), end(2027, 2, 10)),
            ("2026-11-01T00:00:00.000Z".into(), "2027-04-01T00:00:00.000Z".into())
        );
    }

    #[test]
    fn busy_of_reads_google_entries_and_refuses_errors() {
        let ok = serde_json::json!({ "busy": [
            { "start": "2026-12-01T10:00:00Z", "end": "2026-12-01T11:00:00Z" },
            { "start": "2026-12-01T08:00:00+01:00", "end": "2026-12-01T08:30:00+01:00" }
        ] });
        let spans = busy_of(&ok.to_string()).unwrap();
        assert_eq!(crate::time::format_utc(spans[0].0), "2026-12-01T07:00:00.000Z");
        assert_eq!(spans.len(), 2);
        assert_eq!(busy_of(r#"{"busy":[]}"#), Some(vec![]));
        let errors = serde_json::json!({ "errors": [{ "domain": "global", "reason": "notFound" }], "busy": [] });
        assert_eq!(busy_of(&errors.to_string()), None);
        assert_eq!(busy_of(r#"{"busy":[{"start":"soon","end":"later"}]}"#), None);
        assert_eq!(busy_of(r#"{"busy":[{"start":"2026-12-01T10:00:00Z"}]}"#), None);
        assert_eq!(busy_of("null"), None);
        assert_eq!(
            busy_of(r#"{"busy":[{"start":"2026-12-01T10:00:00\u005a","end":"2026-12-01T11:00:00Z"}]}"#)
                .map(|v| v.len()),
            Some(1)
        );
    }

    #[test]
    fn key_is_json_stringify_with_first_seen_order() {
        assert_eq!(
            key(
                "2026-11-01T00:00:00.000Z",
                "2027-01-01T00:00:00.000Z",
                &["b@x.com", "a\"q", "b@x.com"]
            ),
            r#"{"timeMin":"2026-11-01T00:00:00.000Z","timeMax":"2027-01-01T00:00:00.000Z","items":[{"id":"b@x.com"},{"id":"a\"q"}]}"#
        );
    }

    #[test]
    fn divergences_by_kind() {
        let t = |h: u32| {
            NaiveDate::from_ymd_opt(2026, 12, 1)
                .unwrap()
                .and_hms_opt(h, 0, 0)
                .unwrap()
        };
        let sql = [(t(9), t(10)), (t(12), t(13)), (t(15), t(16))];
        let legacy = [(t(9), t(10)), (t(12), t(14)), (t(18), t(19))];
        let kinds: Vec<&str> = compare("c", &legacy, &sql).iter().map(|d| d.kind).collect();
        assert_eq!(kinds, ["different_bounds", "extra_block", "missing_block"]);
        assert!(compare("c", &sql, &sql).is_empty());
    }

    #[test]
    fn malformed_rows_are_not_parsed() {
        let v = serde_json::json!({ "calendars": { "a": { "busy": [] } } });
        let key = r#"{"timeMin":"2026-11-01T00:00:00.000Z","timeMax":"2027-01-01T00:00:00.000Z","items":[{"id":"a"}]}"#;
        assert!(parse_row(key, &v).is_some());
        assert!(parse_row("not json", &v).is_none());
        assert!(parse_row(key, &serde_json::json!({ "calendars": {} })).is_none());
        let backwards = r#"{"timeMin":"2027-01-01T00:00:00.000Z","timeMax":"2026-11-01T00:00:00.000Z","items":[]}"#;
        assert!(parse_row(backwards, &v).is_none());
    }

    #[test]
    fn instants_as_google_writes_them() {
        assert_eq!(google_instant("2026-11-25T09:00:00.000Z"), "2026-11-25T09:00:00Z");
        assert_eq!(google_instant("2026-11-25T09:00:00.250Z"), "2026-11-25T09:00:00.250Z");
    }
}
