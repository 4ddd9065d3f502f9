//! A calendar object resource (RFC 5545) as busy rows, computed here rather than asked of the
//! server: servers' own `expand` and free-busy answers get custom time zones and DST wrong.
//!
//! Every `VEVENT` of the resource is read: the master and its `RECURRENCE-ID` overrides (moved or
//! cancelled instances), `RRULE`/`RDATE`/`EXDATE` expanded within the window only, times with a
//! `TZID` (IANA names, or a `VTIMEZONE` that names one through `X-LIC-LOCATION` or a path ending
//! in one, or a Windows name as Exchange writes them), floating times and all-day `DATE`s in the
//! calendar's zone. An instance is free when
//! cancelled, `TRANSP:TRANSPARENT`, or declined by the owner (`PARTSTAT=DECLINED` on the owner's
//! `ATTENDEE`); Apple's `X-APPLE-TRAVEL-DURATION` makes the travel before it busy too. Recurrence
//! runs on wall-clock time and a local time in a DST gap takes the offset before the gap (RFC 5545
//! §3.3.5). Anything unreadable is an error, never free.

use std::collections::HashMap;

use chrono::{DateTime, Duration, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

use super::ics::{fixed_zone, parse, span, when, Component, Prop, Span, When};
use crate::model::{CacheEvent, Unreadable};
use crate::time::{local_to_utc, zone_named};

/// The time zones a resource's `TZID`s name.
struct Zones {
    by_id: HashMap<String, Option<Tz>>,
    /// Floating times and all-day dates: the calendar's zone.
    floating: Tz,
}

impl Zones {
    fn new(cal: &Component, floating: Tz) -> Self {
        let mut by_id = HashMap::new();
        for vtz in cal.children.iter().filter(|c| c.name == "VTIMEZONE") {
            let Some(id) = vtz.prop("TZID").map(|p| p.value.clone()) else {
                continue;
            };
            let named = zone_by_name(&id)
                .or_else(|| vtz.prop("X-LIC-LOCATION").and_then(|p| zone_by_name(&p.value)))
                .or_else(|| fixed_zone(vtz));
            by_id.insert(id, named);
        }
        Zones { by_id, floating }
    }

    /// The zone of a `TZID` parameter (none: floating).
    fn zone(&self, tzid: Option<&str>) -> Result<Tz, Unreadable> {
        let Some(id) = tzid else {
            return Ok(self.floating);
        };
        match self.by_id.get(id) {
            Some(Some(tz)) => Ok(*tz),
            Some(None) => Err(Unreadable("a CalDAV event uses a VTIMEZONE calsync cannot resolve")),
            None => zone_by_name(id).ok_or(Unreadable("a CalDAV event names an unknown time zone")),
        }
    }

    /// The zone a DATE or DATE-TIME property's wall clock runs in.
    fn zone_of(&self, p: &Prop) -> Result<Tz, Unreadable> {
        Ok(match when(&p.value)? {
            When::Utc(_) => Tz::UTC,
            When::Local(_) => self.zone(p.param("TZID"))?,
            When::Date(_) => self.floating,
        })
    }

    /// A property's value as UTC, and whether it is a DATE.
    fn utc_of(&self, p: &Prop) -> Result<(NaiveDateTime, bool), Unreadable> {
        Ok(match when(&p.value)? {
            When::Utc(t) => (t, false),
            When::Local(t) => (local_to_utc(self.zone(p.param("TZID"))?, t), false),
            When::Date(d) => (local_to_utc(self.floating, d.and_time(chrono::NaiveTime::MIN)), true),
        })
    }
}

/// A zone by its IANA or Windows name (invitations from Exchange carry `W. Europe Standard Time`),
/// or by a path that ends in an IANA name (`/mozilla.org/.../Europe/Berlin`).
pub fn zone_by_name(id: &str) -> Option<Tz> {
    let id = id.trim();
    if let Some(tz) = zone_named(id) {
        return Some(tz);
    }
    let parts: Vec<&str> = id.split('/').filter(|s| !s.is_empty()).collect();
    (1..parts.len()).find_map(|i| parts[i..].join("/").parse::<Tz>().ok())
}

/// Whom the calendar belongs to and what it covers.
pub struct Context<'a> {
    /// The resource's href: the rows' `recurringEventId`, and the prefix of their ids.
    pub href: &'a str,
    pub etag: &'a str,
    /// The calendar's zone (floating times and all-day dates).
    pub zone: Tz,
    /// The owner's email (their own `PARTSTAT`), lower-cased.
    pub owner_email: Option<&'a str>,
    pub from: NaiveDateTime,
    pub to: NaiveDateTime,
}

/// Most instances one resource may have inside the window before it is refused as unreadable.
const MAX_INSTANCES: u16 = 10_000;

/// The busy rows a calendar object resource defines inside the window.
pub fn busy_rows(ics: &str, ctx: &Context<'_>) -> Result<Vec<CacheEvent>, Unreadable> {
    let cal = parse(ics)?;
    let zones = Zones::new(&cal, ctx.zone);
    let events: Vec<&Component> = cal.children.iter().filter(|c| c.name == "VEVENT").collect();
    let mut out = Vec::new();
    // Overrides by the UTC start of the instance they replace.
    let mut overrides: HashMap<NaiveDateTime, &Component> = HashMap::new();
    let mut masters = Vec::new();
    for ev in events {
        match ev.prop("RECURRENCE-ID") {
            Some(rid) if rid.param("RANGE").is_some() => {
                return Err(Unreadable(
                    "a CalDAV event changes this and future instances (RANGE), which calsync does not read",
                ))
            }
            Some(rid) => {
                overrides.insert(zones.utc_of(rid)?.0, ev);
            }
            None => masters.push(ev),
        }
    }
    for master in &masters {
        let dtstart = master
            .prop("DTSTART")
            .ok_or(Unreadable("a CalDAV event has no DTSTART"))?;
        let (first_utc, all_day) = zones.utc_of(dtstart)?;
        let length = length(master, &zones, dtstart, first_utc, all_day)?;
        for start in instances(master, &zones, dtstart, ctx, length)? {
            let ev = match overrides.remove(&start) {
                Some(o) => o,
                None => master,
            };
            if let Some(row) = row(ev, &zones, ctx, start, length, all_day, master)? {
                out.push(row);
            }
        }
    }
    // Overrides whose instance the master does not produce (or with no master in this resource):
    // each stands on its own.
    for (rid, ev) in overrides {
        let dtstart = ev.prop("DTSTART").ok_or(Unreadable("a CalDAV event has no DTSTART"))?;
        let (first, all_day) = zones.utc_of(dtstart)?;
        let length = length(ev, &zones, dtstart, first, all_day)?;
        if let Some(row) = row(ev, &zones, ctx, rid, length, all_day, ev)? {
            out.push(row);
        }
    }
    Ok(out)
}

/// How long each instance lasts: `DTEND - DTSTART` exactly (nominal days for all-day events), else
/// `DURATION`, else a day for all-day events and nothing for timed ones.
fn length(
    ev: &Component,
    zones: &Zones,
    dtstart: &Prop,
    first: NaiveDateTime,
    all_day: bool,
) -> Result<Span, Unreadable> {
    if let Some(end) = ev.prop("DTEND") {
        let (end_utc, end_is_date) = zones.utc_of(end)?;
        if all_day && end_is_date {
            if let (When::Date(a), When::Date(b)) = (when(&dtstart.value)?, when(&end.value)?) {
                return Ok(Span {
                    days: (b - a).num_days().max(0),
                    seconds: 0,
                });
            }
        }
        return Ok(Span {
            days: 0,
            seconds: (end_utc - first).num_seconds().max(0),
        });
    }
    if let Some(d) = ev.prop("DURATION") {
        let s = span(&d.value)?;
        return Ok(Span {
            days: s.days.max(0),
            seconds: s.seconds.max(0),
        });
    }
    Ok(Span {
        days: i64::from(all_day),
        seconds: 0,
    })
}

/// The UTC starts of a master's instances that may overlap the window.
fn instances(
    master: &Component,
    zones: &Zones,
    dtstart: &Prop,
    ctx: &Context<'_>,
    length: Span,
) -> Result<Vec<NaiveDateTime>, Unreadable> {
    let written = when(&dtstart.value)?;
    let zone = zones.zone_of(dtstart)?;
    // Recurrence runs on the wall clock: expand the local times as if they were UTC (no DST), then
    // read each in the event's zone.
    let local_start = match written {
        When::Date(d) => d.and_time(chrono::NaiveTime::MIN),
        When::Local(t) | When::Utc(t) => t,
    };
    let to_real = |local: NaiveDateTime| local_to_utc(zone, local);
    // DTSTART is always an instance (RFC 5545 §3.8.5.3), even where the rule would not produce it.
    let mut starts = vec![to_real(local_start)];
    let rules: Vec<(String, Option<NaiveDateTime>)> = master
        .props("RRULE")
        .map(|r| floating_until(&r.value, zone, written))
        // A rule that ends before it starts adds nothing to DTSTART.
        .filter(|(_, until)| until.is_none_or(|u| u >= local_start))
        .collect();
    if !rules.is_empty() {
        let bad = Unreadable("a CalDAV event has a recurrence rule calsync cannot read");
        let dt = rrule::Tz::UTC.from_utc_datetime(&local_start);
        let mut set = rrule::RRuleSet::new(dt);
        for (r, _) in rules {
            let rule: rrule::RRule<rrule::Unvalidated> = r.parse().map_err(|_| bad)?;
            set = set.rrule(rule.validate(dt).map_err(|_| bad)?);
        }
        // The window in the same floating time, with a margin for zone offsets and the length.
        let margin = Duration::days(2 + length.days) + Duration::seconds(length.seconds);
        let after = rrule::Tz::UTC.from_utc_datetime(&(ctx.from - margin));
        let before = rrule::Tz::UTC.from_utc_datetime(&(ctx.to + Duration::days(2)));
        let result = set.after(after).before(before).all(MAX_INSTANCES);
        if result.limited {
            return Err(Unreadable(
                "a CalDAV event recurs too often to expand within the window",
            ));
        }
        starts.extend(result.dates.iter().map(|d| to_real(d.naive_utc())));
    }
    for p in master.props("RDATE") {
        if p.param("VALUE").is_some_and(|v| v.eq_ignore_ascii_case("PERIOD")) {
            return Err(Unreadable(
                "a CalDAV event uses RDATE periods, which calsync does not read",
            ));
        }
        starts.extend(instants(p, zones, &to_real)?);
    }
    let mut excluded = Vec::new();
    for p in master.props("EXDATE") {
        excluded.extend(instants(p, zones, &to_real)?);
    }
    starts.retain(|s| !excluded.contains(s));
    starts.sort_unstable();
    starts.dedup();
    Ok(starts)
}

/// The instants of an `RDATE` or `EXDATE` list: DATE values on the event's wall clock (`to_real`),
/// times in their own zone.
fn instants(
    p: &Prop,
    zones: &Zones,
    to_real: &impl Fn(NaiveDateTime) -> NaiveDateTime,
) -> Result<Vec<NaiveDateTime>, Unreadable> {
    p.value
        .split(',')
        .map(|v| {
            Ok(match when(v)? {
                When::Date(d) => to_real(d.and_time(chrono::NaiveTime::MIN)),
                _ => {
                    let one = Prop {
                        value: v.to_string(),
                        ..p.clone()
                    };
                    zones.utc_of(&one)?.0
                }
            })
        })
        .collect()
}

/// The rule with a UTC `UNTIL` moved into the floating time the expansion runs in (and a DATE
/// `UNTIL` made the end of that day), so it bounds the local instances it meant to; and that local
/// `UNTIL`.
fn floating_until(rule: &str, zone: Tz, start: When) -> (String, Option<NaiveDateTime>) {
    let mut until = None;
    let rule = rule
        .split(';')
        .map(|part| {
            let Some(v) = part.strip_prefix("UNTIL=").or_else(|| part.strip_prefix("until=")) else {
                return part.to_string();
            };
            let local = match when(v) {
                Ok(When::Utc(t)) if !matches!(start, When::Utc(_)) => {
                    DateTime::<Utc>::from_naive_utc_and_offset(t, Utc)
                        .with_timezone(&zone)
                        .naive_local()
                }
                Ok(When::Utc(t) | When::Local(t)) => t,
                Ok(When::Date(d)) => d.and_hms_opt(23, 59, 59).unwrap_or_default(),
                Err(_) => return part.to_string(),
            };
            until = Some(local);
            format!("UNTIL={}", local.format("%Y%m%dT%H%M%SZ"))
        })
        .collect::<Vec<_>>()
        .join(";");
    (rule, until)
}

/// One instance as a row, or none when it is free or outside the window.
fn row(
    ev: &Component,
    zones: &Zones,
    ctx: &Context<'_>,
    original: NaiveDateTime,
    master_length: Span,
    master_all_day: bool,
    master: &Component,
) -> Result<Option<CacheEvent>, Unreadable> {
    let status = ev.text("STATUS").unwrap_or_default().to_ascii_uppercase();
    if status == "CANCELLED" {
        return Ok(None);
    }
    if ev.text("TRANSP").is_some_and(|t| t.eq_ignore_ascii_case("TRANSPARENT")) {
        return Ok(None);
    }
    if declined_by_owner(ev, ctx.owner_email) {
        return Ok(None);
    }
    // An override carries its own times; an instance of the master starts where the rule put it.
    let is_override = ev.prop("RECURRENCE-ID").is_some();
    let own = if is_override { ev } else { master };
    let dtstart = own.prop("DTSTART").ok_or(Unreadable("a CalDAV event has no DTSTART"))?;
    let (start, all_day, length) = if is_override {
        let (s, all_day) = zones.utc_of(dtstart)?;
        // An override that says nothing of its length keeps the series'.
        let own = ev.prop("DTEND").is_some() || ev.prop("DURATION").is_some();
        let length = if own {
            length(ev, zones, dtstart, s, all_day)?
        } else {
            master_length
        };
        (s, all_day, length)
    } else {
        (original, master_all_day, master_length)
    };
    let end = end_of(start, length, zones.zone_of(dtstart)?)?;
    let travel = match ev.prop("X-APPLE-TRAVEL-DURATION") {
        Some(p) => span(&p.value)?,
        None => Span::default(),
    };
    let busy_from = start - Duration::days(travel.days.max(0)) - Duration::seconds(travel.seconds.max(0));
    if end <= ctx.from || busy_from >= ctx.to {
        return Ok(None);
    }
    let uid = ev.text("UID").or_else(|| master.text("UID"));
    let recurring = ["RRULE", "RDATE"]
        .iter()
        .any(|p| ev.prop(p).is_some() || master.prop(p).is_some())
        || is_override;
    Ok(Some(CacheEvent {
        external_id: if recurring {
            format!("{}#{}", ctx.href, original.format("%Y%m%dT%H%M%SZ"))
        } else {
            ctx.href.to_string()
        },
        etag: ctx.etag.to_string(),
        ical_uid: uid,
        ical_sequence: ev.text("SEQUENCE").and_then(|s| s.trim().parse().ok()).unwrap_or(0),
        summary: ev.text("SUMMARY"),
        description: None,
        location: ev.text("LOCATION"),
        start: busy_from,
        end,
        is_all_day: all_day,
        time_zone: Some(zones.floating.name().to_string()),
        status: if status == "TENTATIVE" {
            "tentative"
        } else {
            "confirmed"
        },
        recurring_event_id: Some(ctx.href.to_string()),
        original_start: recurring.then_some(original),
        external_created: None,
        external_updated: None,
        organizer: true,
    }))
}

/// The end of an instance starting at `start` (UTC): nominal days on the wall clock of `zone`
/// (its start's), then exact seconds.
fn end_of(start: NaiveDateTime, length: Span, zone: Tz) -> Result<NaiveDateTime, Unreadable> {
    if length.days == 0 {
        return Ok(start + Duration::seconds(length.seconds));
    }
    let local = DateTime::<Utc>::from_naive_utc_and_offset(start, Utc)
        .with_timezone(&zone)
        .naive_local();
    let moved = local
        .checked_add_signed(Duration::days(length.days))
        .ok_or(Unreadable("a CalDAV event ends out of range"))?;
    Ok(local_to_utc(zone, moved) + Duration::seconds(length.seconds))
}

fn declined_by_owner(ev: &Component, owner: Option<&str>) -> bool {
    let Some(owner) = owner else {
        return false;
    };
    ev.props("ATTENDEE").any(|a| {
        let addr = a.value.trim();
        let addr = addr
            .strip_prefix("mailto:")
            .or_else(|| addr.strip_prefix("MAILTO:"))
            .unwrap_or(addr);
        addr.eq_ignore_ascii_case(owner) && a.param("PARTSTAT").is_some_and(|p| p.eq_ignore_ascii_case("DECLINED"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap()
    }

    fn ctx<'a>(zone: &str) -> Context<'a> {
        Context {
            href: "/cal/a.ics",
            etag: "\"1\"",
            zone: zone.parse().unwrap(),
            owner_email: Some("owner@example.com"),
            from: t("2026-01-01 00:00"),
            to: t("2027-01-01 00:00"),
        }
    }

    fn spans(ics: &str, zone: &str) -> Vec<(NaiveDateTime, NaiveDateTime)> {
        let mut v: Vec<_> = busy_rows(ics, &ctx(zone))
            .unwrap()
            .into_iter()
            .map(|r| (r.start, r.end))
            .collect();
        v.sort();
        v
    }

    fn cal(body: &str) -> String {
        format!("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\n{body}END:VCALENDAR\r\n")
    }

    #[test]
    fn weekly_series_keeps_the_wall_clock_across_dst_with_overrides_and_exdates() {
        let ics = cal("BEGIN:VEVENT\r\nUID:s\r\nDTSTART;TZID=Europe/Berlin:20260316T090000\r\nDTEND;TZID=Europe/Berlin:20260316T100000\r\nRRULE:FREQ=WEEKLY;COUNT=4\r\nEXDATE;TZID=Europe/Berlin:20260330T090000\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:s\r\nRECURRENCE-ID;TZID=Europe/Berlin:20260323T090000\r\nDTSTART;TZID=Europe/Berlin:20260323T140000\r\nDTEND;TZID=Europe/Berlin:20260323T150000\r\nEND:VEVENT\r\n");
        assert_eq!(
            spans(&ics, "UTC"),
            vec![
                (t("2026-03-16 08:00"), t("2026-03-16 09:00")),
                (t("2026-03-23 13:00"), t("2026-03-23 14:00")),
                // 29 March: Berlin moves to summer time; 9:00 local is now 7:00 UTC.
                (t("2026-04-06 07:00"), t("2026-04-06 08:00")),
            ]
        );
    }

    #[test]
    fn free_instances_and_all_day_dates() {
        let ics = cal("BEGIN:VEVENT\r\nUID:a\r\nDTSTART;VALUE=DATE:20260601\r\nDTEND;VALUE=DATE:20260603\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:b\r\nDTSTART:20260601T100000Z\r\nDTEND:20260601T110000Z\r\nTRANSP:TRANSPARENT\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:c\r\nDTSTART:20260601T100000Z\r\nDURATION:PT1H\r\nATTENDEE;PARTSTAT=DECLINED:mailto:Owner@Example.com\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:d\r\nDTSTART:20260601T100000Z\r\nDURATION:PT1H\r\nSTATUS:CANCELLED\r\nEND:VEVENT\r\n");
        assert_eq!(
            spans(&ics, "America/New_York"),
            vec![(t("2026-06-01 04:00"), t("2026-06-03 04:00"))]
        );
    }

    #[test]
    fn a_cancelled_override_removes_its_instance_and_travel_time_is_busy() {
        let ics = cal("BEGIN:VEVENT\r\nUID:s\r\nDTSTART:20260105T090000Z\r\nDURATION:PT30M\r\nRRULE:FREQ=DAILY;UNTIL=20260107T090000Z\r\nX-APPLE-TRAVEL-DURATION;VALUE=DURATION:PT15M\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:s\r\nRECURRENCE-ID:20260106T090000Z\r\nDTSTART:20260106T090000Z\r\nDURATION:PT30M\r\nSTATUS:CANCELLED\r\nEND:VEVENT\r\n");
        assert_eq!(
            spans(&ics, "UTC"),
            vec![
                (t("2026-01-05 08:45"), t("2026-01-05 09:30")),
                (t("2026-01-07 08:45"), t("2026-01-07 09:30")),
            ]
        );
    }

    #[test]
    fn custom_zones_gaps_and_unbounded_series() {
        // A VTIMEZONE under a private name that says where it is, a fixed-offset one, and a time in
        // the spring-forward gap (02:30 on 29 March in Berlin) read with the offset before it.
        let ics = cal("BEGIN:VTIMEZONE\r\nTZID:/custom/Europe/Berlin\r\nBEGIN:STANDARD\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\nBEGIN:VTIMEZONE\r\nTZID:Office\r\nBEGIN:STANDARD\r\nTZOFFSETTO:+0530\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\nBEGIN:VEVENT\r\nUID:g\r\nDTSTART;TZID=/custom/Europe/Berlin:20260329T023000\r\nDURATION:PT1H\r\nEND:VEVENT\r\n");
        assert_eq!(spans(&ics, "UTC"), vec![(t("2026-03-29 01:30"), t("2026-03-29 02:30"))]);
        let half = cal("BEGIN:VTIMEZONE\r\nTZID:Office\r\nBEGIN:STANDARD\r\nTZOFFSETTO:+0530\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\nBEGIN:VEVENT\r\nUID:h\r\nDTSTART;TZID=Office:20260329T023000\r\nDURATION:PT1H\r\nEND:VEVENT\r\n");
        assert!(
            busy_rows(&half, &ctx("UTC")).is_err(),
            "an unresolvable zone is an error, never free"
        );
        // Exchange's invitations name zones the Windows way, with rules calsync need not read.
        let windows = cal("BEGIN:VTIMEZONE\r\nTZID:W. Europe Standard Time\r\nBEGIN:STANDARD\r\nDTSTART:16010101T030000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nRRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10\r\nEND:STANDARD\r\nBEGIN:DAYLIGHT\r\nDTSTART:16010101T020000\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nRRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\nBEGIN:VEVENT\r\nUID:w\r\nDTSTART;TZID=W. Europe Standard Time:20260701T090000\r\nDURATION:PT1H\r\nEND:VEVENT\r\n");
        assert_eq!(
            spans(&windows, "UTC"),
            vec![(t("2026-07-01 07:00"), t("2026-07-01 08:00"))]
        );
        let unbounded = cal(
            "BEGIN:VEVENT\r\nUID:u\r\nDTSTART:20000103T090000Z\r\nDURATION:PT1H\r\nRRULE:FREQ=WEEKLY\r\nEND:VEVENT\r\n",
        );
        assert_eq!(busy_rows(&unbounded, &ctx("UTC")).unwrap().len(), 52);
    }

    #[test]
    fn nominal_days_follow_the_wall_clock() {
        // P1D from 12:00 the day before Berlin's spring-forward ends at 12:00 local: 23 hours.
        let ics = cal(
            "BEGIN:VEVENT\r\nUID:p\r\nDTSTART;TZID=Europe/Berlin:20260328T120000\r\nDURATION:P1D\r\nEND:VEVENT\r\n",
        );
        assert_eq!(spans(&ics, "UTC"), vec![(t("2026-03-28 11:00"), t("2026-03-29 10:00"))]);
    }

    #[test]
    fn rdates_dtstart_off_the_rule_short_overrides_and_rules_that_end_before_they_start() {
        // RDATE alone: each date its own row.
        let ics = cal("BEGIN:VEVENT\r\nUID:r\r\nDTSTART:20260310T090000Z\r\nDURATION:PT1H\r\nRDATE:20260317T090000Z,20260324T090000Z\r\nEND:VEVENT\r\n");
        assert_eq!(spans(&ics, "UTC").len(), 3);
        // DTSTART on a Monday, the rule on Tuesdays: the Monday counts too.
        let ics = cal("BEGIN:VEVENT\r\nUID:d\r\nDTSTART:20260302T090000Z\r\nDURATION:PT1H\r\nRRULE:FREQ=WEEKLY;BYDAY=TU;UNTIL=20260311T000000Z\r\nEND:VEVENT\r\n");
        assert_eq!(
            spans(&ics, "UTC"),
            vec![
                (t("2026-03-02 09:00"), t("2026-03-02 10:00")),
                (t("2026-03-03 09:00"), t("2026-03-03 10:00")),
                (t("2026-03-10 09:00"), t("2026-03-10 10:00")),
            ]
        );
        // An override that names only its new start keeps the series' length.
        let ics = cal("BEGIN:VEVENT\r\nUID:o\r\nDTSTART:20260302T090000Z\r\nDURATION:PT1H\r\nRRULE:FREQ=DAILY;COUNT=2\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:o\r\nRECURRENCE-ID:20260303T090000Z\r\nDTSTART:20260303T140000Z\r\nEND:VEVENT\r\n");
        assert_eq!(spans(&ics, "UTC")[1], (t("2026-03-03 14:00"), t("2026-03-03 15:00")));
        // A rule whose UNTIL lies before DTSTART: DTSTART alone.
        let ics = cal("BEGIN:VEVENT\r\nUID:u\r\nDTSTART:20260302T090000Z\r\nDURATION:PT1H\r\nRRULE:FREQ=DAILY;UNTIL=20260301T000000Z\r\nEND:VEVENT\r\n");
        assert_eq!(spans(&ics, "UTC"), vec![(t("2026-03-02 09:00"), t("2026-03-02 10:00"))]);
        // This-and-future overrides are refused, not guessed.
        let ics = cal("BEGIN:VEVENT\r\nUID:f\r\nDTSTART:20260302T090000Z\r\nDURATION:PT1H\r\nRRULE:FREQ=DAILY;COUNT=5\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:f\r\nRECURRENCE-ID;RANGE=THISANDFUTURE:20260304T090000Z\r\nDTSTART:20260304T100000Z\r\nDURATION:PT1H\r\nEND:VEVENT\r\n");
        assert!(busy_rows(&ics, &ctx("UTC")).is_err());
    }

    #[test]
    fn malformed_objects_are_errors() {
        for bad in [
            "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nEND:VCALENDAR\r\n",
            &cal("BEGIN:VEVENT\r\nUID:x\r\nDTSTART:2026XX01T000000Z\r\nEND:VEVENT\r\n"),
            &cal("BEGIN:VEVENT\r\nUID:x\r\nDTSTART:20260101T000000Z\r\nRRULE:FREQ=NEVER\r\nEND:VEVENT\r\n"),
            &cal("BEGIN:VEVENT\r\nUID:x\r\nEND:VEVENT\r\n"),
        ] {
            assert!(busy_rows(bad, &ctx("UTC")).is_err(), "{bad}");
        }
    }
}
