//! The cache as reads see it: which calendars it may answer for (and why not), their busy blocks
//! merged as a provider's free/busy answer merges them, and the answer of a read. Shared by the
//! read path (`availability`), the legacy dual-write of a sync's commit and the legacy migration's
//! checks (`legacy`), so none of them imports another.

pub mod legacy_format;
pub mod legacy_write;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};

pub use crate::db::reads::{CalendarRow, LegacyCell, Selection};
use crate::error::{Error, Result};
pub use crate::model::Uncached;
use crate::time::format_utc;

/// How long after a failed sync the next attempt is due: a minute after the first failure, doubling
/// with each further one, at most 12 hours. A transient failure is retried within minutes, a
/// permanent one ever more rarely.
pub fn retry_after(errors: i32) -> Duration {
    let doublings = errors.clamp(1, 16) as u32 - 1;
    Duration::from_secs(60u64 << doublings).min(Duration::from_secs(12 * 3600))
}

/// A validated read request; the range is half-open `[time_min, time_max)`.
#[derive(Debug, Clone)]
pub struct Query {
    pub selection: Selection,
    pub time_min: DateTime<Utc>,
    pub time_max: DateTime<Utc>,
}

impl Query {
    /// Validates the raw arguments and builds a query.
    pub fn new(
        selection: Selection,
        time_min: DateTime<Utc>,
        time_max: DateTime<Utc>,
        max_calendars: usize,
    ) -> Result<Self> {
        if time_max <= time_min {
            return Err(Error::invalid("timeMax must be after timeMin"));
        }
        let selection = match selection {
            Selection::Ids(ids) => {
                if ids.is_empty() {
                    return Err(Error::invalid("selectedCalendarIds must not be empty"));
                }
                if ids.len() > max_calendars {
                    return Err(Error::invalid(format!(
                        "selectedCalendarIds names {} calendars; at most {max_calendars} are allowed",
                        ids.len()
                    )));
                }
                if ids.iter().any(|id| id.trim().is_empty() || id.len() > 256) {
                    return Err(Error::invalid(
                        "selectedCalendarIds must be non-empty strings of at most 256 characters",
                    ));
                }
                let mut seen = HashSet::new();
                Selection::Ids(ids.into_iter().filter(|id| seen.insert(id.clone())).collect())
            }
            Selection::User { user_id, .. } if user_id <= 0 => {
                return Err(Error::invalid("userId must be a positive integer"));
            }
            s => s,
        };
        Ok(Query {
            selection,
            time_min,
            time_max,
        })
    }
}

/// How old a calendar's cache may be before reads stop answering from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Staleness {
    /// A pushed calendar with neither a successful sync nor a channel confirmation for this long.
    pub stale_after: Duration,
    /// How long an announced change may wait for its sync.
    pub pending_grace: Duration,
    /// A polled calendar whose last successful poll is older than this.
    pub polled_after: Duration,
}

impl Staleness {
    /// The bounds the configuration sets.
    pub fn of(cfg: &crate::config::Config) -> Self {
        Staleness {
            stale_after: cfg.stale_after,
            pending_grace: cfg.pending_grace,
            polled_after: cfg.poll_stale_after,
        }
    }
}

/// Decides whether the cache may answer for a calendar over `[min, max)` at `now`.
pub fn classify(
    row: &CalendarRow,
    flag_on: bool,
    now: NaiveDateTime,
    bounds: &Staleness,
    min: NaiveDateTime,
    max: NaiveDateTime,
) -> Result<(), Uncached> {
    if !crate::providers::supports(&row.integration) {
        return Err(Uncached::UnsupportedProvider);
    }
    if !flag_on {
        return Err(Uncached::FlagOff);
    }
    if row.credential_invalid {
        return Err(Uncached::CredentialInvalid);
    }
    // A polled calendar has no channel: its polls are what keep it fresh.
    let polled = crate::providers::polled(&row.integration);
    let live_channel = row.channel_id.is_some() && row.channel_expiration.is_some_and(|exp| exp > now);
    if !live_channel && !polled {
        return Err(Uncached::NotSubscribed);
    }
    let Some(synced_at) = row.synced_at else {
        return Err(Uncached::NeverSynced);
    };
    if row.sync_error_at.is_some_and(|err| err >= synced_at) {
        return Err(Uncached::SyncFailed);
    }
    // A change the provider announced that no sync has covered for longer than the grace period:
    // the cache would answer with what came before it.
    if row
        .pending_ms
        .is_some_and(|ms| ms > bounds.pending_grace.as_millis() as i64)
    {
        return Err(Uncached::Stale);
    }
    let (confirmed, stale_after) = match polled {
        true => (synced_at, bounds.polled_after),
        false => (
            row.subscribed_at.map_or(synced_at, |s| s.max(synced_at)),
            bounds.stale_after,
        ),
    };
    let stale_after = chrono::Duration::from_std(stale_after).unwrap_or(chrono::Duration::MAX);
    if now.signed_duration_since(confirmed) > stale_after {
        return Err(Uncached::Stale);
    }
    // The window must cover the range, except for a part before the window that lies wholly in
    // the past (cleanup moves window starts up to now): time before now is never bookable, so that
    // part is answered with what the cache still has.
    match (row.window_start, row.window_end) {
        (Some(ws), Some(we)) if (ws <= min || ws <= now) && max <= we => Ok(()),
        _ => Err(Uncached::OutOfWindow),
    }
}

/// Clips intervals to `[min, max)` and merges those that overlap or touch, as free/busy answers do.
/// `intervals` must be sorted by start.
pub fn merge_busy(intervals: impl IntoIterator<Item = Span>, min: NaiveDateTime, max: NaiveDateTime) -> Vec<Span> {
    let mut out: Vec<Span> = Vec::new();
    for (s, e) in intervals {
        let (s, e) = (s.max(min), e.min(max));
        if s >= e {
            continue;
        }
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// A busy interval, ISO-8601 UTC with milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Busy {
    pub start: String,
    pub end: String,
    pub selected_calendar_id: String,
    pub source: String,
}

/// What the read path answers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer {
    pub busy: Vec<Busy>,
    pub served: Vec<String>,
    pub uncached: Vec<(String, Uncached)>,
    /// Requested rows whose calendar a sync would make servable again (`stale`, `never_synced`,
    /// `out_of_window`, or `sync_failed` past its backoff): what sync-on-read schedules.
    pub repairable: Vec<String>,
    /// With a [`Route`]: the served rows answered from the legacy JSON cache.
    pub legacy_served: Option<Vec<String>>,
    /// With shadow reads: what comparing each served calendar with the other source found.
    pub shadow: Option<ShadowReport>,
    /// A replica (`readDatabaseUrl`) answered, not the primary.
    pub by_replica: bool,
}

/// A busy interval (start, end), UTC.
pub type Span = (NaiveDateTime, NaiveDateTime);

/// How a read routes calendars between the SQL cache and Cal.com's legacy JSON cache while an
/// installation migrates off the latter (SPEC §8).
#[derive(Debug, Clone)]
pub struct Route<'a> {
    /// `calendar-cache-sql` per user: on = the SQL cache, off = the legacy JSON cache.
    pub sql: &'a HashMap<i32, bool>,
    /// Also compare each served calendar with the source not served.
    pub shadow: bool,
    /// The end of the window of the legacy key the read looked up.
    pub legacy_end: NaiveDateTime,
}

/// What a shadow read found: calendars whose served answer was compared with the other source's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShadowReport {
    /// Calendars both sources answered for.
    pub compared: u32,
    /// Of those, the calendars whose answers differ.
    pub diverged: u32,
    /// Calendars the source not served could not answer for (nothing to compare).
    pub not_comparable: u32,
    /// Every difference, with the source that was served (`sql` or `legacy`).
    pub divergences: Vec<(&'static str, legacy_format::Divergence)>,
}

/// The blocks of a calendar's SQL cache row, clipped to `[min, max)` and merged.
fn sql_spans(row: &CalendarRow, min: NaiveDateTime, max: NaiveDateTime) -> Vec<Span> {
    let starts = row.starts.as_deref().unwrap_or_default();
    let ends = row.ends.as_deref().unwrap_or_default();
    let mut spans: Vec<Span> = starts.iter().copied().zip(ends.iter().copied()).collect();
    spans.sort_unstable();
    merge_busy(spans, min, max)
}

/// The blocks the legacy JSON cache holds for a calendar over `[min, max)`, as the legacy reader
/// would serve them, or why it cannot. Unlike the legacy reader, a range that runs past the window
/// of the row's key is not answered (the row knows nothing of that time; "free" there would be a
/// guess).
fn legacy_spans(
    row: &CalendarRow,
    legacy_end: NaiveDateTime,
    min: NaiveDateTime,
    max: NaiveDateTime,
) -> Result<Vec<Span>, Uncached> {
    let Some(cell) = row.legacy.as_ref().filter(|c| c.found) else {
        return Err(Uncached::LegacyMiss);
    };
    if max > legacy_end {
        return Err(Uncached::OutOfWindow);
    }
    let spans = cell
        .calendar
        .as_deref()
        .and_then(legacy_format::busy_of)
        .ok_or(Uncached::LegacyUnreadable)?;
    Ok(merge_busy(spans, min, max))
}

/// Turns the query rows into an answer: classification, one set of blocks per provider calendar.
/// `flags` is `calendar-subscription-cache` per user; `route`, when given, sends each user's
/// calendars to the SQL or the legacy JSON cache.
pub fn assemble(
    query: &Query,
    rows: Vec<CalendarRow>,
    flags: &HashMap<i32, bool>,
    route: Option<&Route>,
    now: NaiveDateTime,
    bounds: &Staleness,
) -> Answer {
    let (min, max) = (query.time_min.naive_utc(), query.time_max.naive_utc());
    let mut answer = Answer {
        shadow: route.filter(|r| r.shadow).map(|_| ShadowReport::default()),
        legacy_served: route.map(|_| Vec::new()),
        ..Answer::default()
    };
    let mut by_id: HashMap<String, CalendarRow> = HashMap::with_capacity(rows.len());
    let mut order: Vec<String> = Vec::with_capacity(rows.len());
    for row in rows {
        order.push(row.req_id.clone());
        by_id.insert(row.req_id.clone(), row);
    }
    // Requested order for ids; for a user, the query's order (sorted for stable output).
    let requested: Vec<String> = match &query.selection {
        Selection::Ids(ids) => ids.clone(),
        Selection::User { .. } => {
            order.sort();
            order
        }
    };
    let mut emitted_owners: HashSet<String> = HashSet::new();
    // Every calendar's blocks, by index into `sources` (its id and provider), sorted and formatted
    // once all are in: comparing timestamps, not their strings.
    let mut blocks: Vec<(NaiveDateTime, NaiveDateTime, usize)> = Vec::new();
    let mut sources: Vec<(String, String)> = Vec::new();
    for id in requested {
        let Some(row) = by_id.get(&id) else {
            answer.uncached.push((id, Uncached::NotFound));
            continue;
        };
        let from_sql = route.is_none_or(|r| r.sql.get(&row.user_id).copied().unwrap_or(false));
        let flag_on = flags.get(&row.user_id).copied().unwrap_or(false);
        let sql = || classify(row, flag_on, now, bounds, min, max).map(|()| sql_spans(row, min, max));
        let legacy = || legacy_spans(row, route.map_or(max, |r| r.legacy_end), min, max);
        let spans = match if from_sql { sql() } else { legacy() } {
            Ok(spans) => spans,
            Err(reason) => {
                let repairable = from_sql
                    && match reason {
                        Uncached::Stale | Uncached::NeverSynced | Uncached::OutOfWindow => true,
                        Uncached::SyncFailed => row.sync_error_at.is_none_or(|at| {
                            now >= at + chrono::Duration::from_std(retry_after(row.sync_errors)).unwrap_or_default()
                        }),
                        _ => false,
                    };
                if repairable {
                    answer.repairable.push(id.clone());
                }
                answer.uncached.push((id, reason));
                continue;
            }
        };
        answer.served.push(id.clone());
        if let Some(list) = answer.legacy_served.as_mut().filter(|_| !from_sql) {
            list.push(id.clone());
        }
        if !emitted_owners.insert(row.owner_id.clone()) {
            continue; // another row for the same provider calendar already gave its blocks
        }
        if let Some(report) = answer.shadow.as_mut() {
            match if from_sql { legacy() } else { sql() } {
                Err(_) => report.not_comparable += 1,
                Ok(other) => {
                    // From now on: time before now is never bookable, and the SQL cache keeps
                    // only a day of it.
                    let from = min.max(now);
                    let clip = |s: &[Span]| merge_busy(s.iter().copied(), from, max);
                    let (sql_side, legacy_side) = if from_sql { (&spans, &other) } else { (&other, &spans) };
                    let found = legacy_format::compare(&id, &clip(legacy_side), &clip(sql_side));
                    report.compared += 1;
                    if !found.is_empty() {
                        report.diverged += 1;
                    }
                    let served = if from_sql { "sql" } else { "legacy" };
                    report.divergences.extend(found.into_iter().map(|d| (served, d)));
                }
            }
        }
        blocks.extend(spans.into_iter().map(|(s, e)| (s, e, sources.len())));
        sources.push((id, row.integration.clone()));
    }
    // Stable: blocks with equal bounds keep the calendars' order.
    blocks.sort_by_key(|&(s, e, _)| (s, e));
    answer.busy = blocks
        .into_iter()
        .map(|(s, e, i)| Busy {
            start: format_utc(s),
            end: format_utc(e),
            selected_calendar_id: sources[i].0.clone(),
            source: sources[i].1.clone(),
        })
        .collect();
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(stale_after: Duration) -> Staleness {
        Staleness {
            stale_after,
            pending_grace: DAY,
            polled_after: DAY,
        }
    }
    use chrono::NaiveDate;

    fn t(h: u32, m: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2026, 3, 2)
            .unwrap()
            .and_hms_opt(h, m, 0)
            .unwrap()
    }

    fn healthy(id: &str, owner: &str) -> CalendarRow {
        CalendarRow {
            req_id: id.into(),
            user_id: 1,
            integration: "google_calendar".into(),
            owner_id: owner.into(),
            channel_id: Some("ch".into()),
            channel_expiration: Some(t(23, 0)),
            subscribed_at: Some(t(1, 0)),
            synced_at: Some(t(9, 0)),
            sync_error_at: None,
            window_start: Some(t(0, 0)),
            window_end: Some(t(23, 59)),
            sync_errors: 0,
            pending_ms: None,
            credential_invalid: false,
            // Unsorted, as the query returns them.
            starts: Some(vec![t(13, 0), t(10, 0), t(10, 30)]),
            ends: Some(vec![t(14, 0), t(11, 0), t(11, 30)]),
            legacy: None,
            replica_lag_ms: None,
            snapshot: None,
        }
    }

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn merge_clips_and_joins_overlaps_and_touching() {
        let got = merge_busy(
            vec![
                (t(8, 0), t(9, 0)),
                (t(9, 0), t(9, 30)),
                (t(9, 10), t(9, 20)),
                (t(11, 0), t(13, 0)),
            ],
            t(8, 30),
            t(12, 0),
        );
        assert_eq!(got, vec![(t(8, 30), t(9, 30)), (t(11, 0), t(12, 0))]);
    }

    #[test]
    fn merge_drops_intervals_that_only_touch_the_range() {
        // Half-open: an event ending exactly at min or starting exactly at max is not busy.
        assert!(merge_busy(vec![(t(7, 0), t(8, 0)), (t(12, 0), t(13, 0))], t(8, 0), t(12, 0)).is_empty());
    }

    #[test]
    fn polled_calendars_need_no_channel_and_go_stale_after_their_bound() {
        let (now, min, max) = (t(12, 0), t(10, 0), t(18, 0));
        let mut r = healthy("a", "a");
        r.integration = "apple_calendar".into();
        (r.channel_id, r.channel_expiration, r.subscribed_at) = (None, None, None);
        let polled = |after_secs| Staleness {
            stale_after: DAY,
            pending_grace: DAY,
            polled_after: Duration::from_secs(after_secs),
        };
        // Synced at 9:00, read at 12:00: within a 4 h bound, past a 2 h one.
        assert_eq!(classify(&r, true, now, &polled(4 * 3600), min, max), Ok(()));
        assert_eq!(
            classify(&r, true, now, &polled(2 * 3600), min, max),
            Err(Uncached::Stale)
        );
        // A pushed calendar still needs its channel.
        r.integration = "google_calendar".into();
        assert_eq!(
            classify(&r, true, now, &polled(4 * 3600), min, max),
            Err(Uncached::NotSubscribed)
        );
    }

    #[test]
    fn classify_reasons_in_order() {
        let (now, min, max) = (t(12, 0), t(10, 0), t(18, 0));
        let ok = healthy("a", "a");
        assert_eq!(classify(&ok, true, now, &bounds(DAY), min, max), Ok(()));
        let mut r = ok.clone();
        r.integration = "lark_calendar".into();
        assert_eq!(
            classify(&r, true, now, &bounds(DAY), min, max),
            Err(Uncached::UnsupportedProvider)
        );
        assert_eq!(
            classify(&ok, false, now, &bounds(DAY), min, max),
            Err(Uncached::FlagOff)
        );
        let mut r = ok.clone();
        r.credential_invalid = true;
        assert_eq!(
            classify(&r, true, now, &bounds(DAY), min, max),
            Err(Uncached::CredentialInvalid)
        );
        let mut r = ok.clone();
        r.channel_expiration = Some(t(11, 0));
        assert_eq!(
            classify(&r, true, now, &bounds(DAY), min, max),
            Err(Uncached::NotSubscribed)
        );
        let mut r = ok.clone();
        r.synced_at = None;
        assert_eq!(
            classify(&r, true, now, &bounds(DAY), min, max),
            Err(Uncached::NeverSynced)
        );
        let mut r = ok.clone();
        r.sync_error_at = Some(t(9, 30));
        assert_eq!(
            classify(&r, true, now, &bounds(DAY), min, max),
            Err(Uncached::SyncFailed)
        );
        r.synced_at = Some(t(9, 45)); // a later success clears the failure
        assert_eq!(classify(&r, true, now, &bounds(DAY), min, max), Ok(()));
        assert_eq!(
            classify(&ok, true, now, &bounds(Duration::from_secs(3600)), min, max),
            Err(Uncached::Stale)
        );
        assert_eq!(
            classify(
                &ok,
                true,
                now,
                &bounds(DAY),
                min,
                t(23, 59) + chrono::Duration::minutes(1)
            ),
            Err(Uncached::OutOfWindow)
        );
        let mut r = ok.clone();
        r.window_start = None;
        assert_eq!(
            classify(&r, true, now, &bounds(DAY), min, max),
            Err(Uncached::OutOfWindow)
        );
    }

    #[test]
    fn rows_of_one_calendar_are_served_once() {
        let q = Query::new(
            Selection::Ids(vec!["a".into(), "b".into(), "a".into(), "zz".into()]),
            t(10, 0).and_utc(),
            t(18, 0).and_utc(),
            10,
        )
        .unwrap();
        let rows = vec![healthy("a", "owner"), healthy("b", "owner")];
        let flags = HashMap::from([(1, true)]);
        let ans = assemble(&q, rows, &flags, None, t(12, 0), &bounds(DAY));
        assert_eq!(ans.served, vec!["a", "b"]);
        assert_eq!(ans.uncached, vec![("zz".to_string(), Uncached::NotFound)]);
        let blocks: Vec<(&str, &str)> = ans.busy.iter().map(|b| (b.start.as_str(), b.end.as_str())).collect();
        assert_eq!(
            blocks,
            vec![
                ("2026-03-02T10:00:00.000Z", "2026-03-02T11:30:00.000Z"),
                ("2026-03-02T13:00:00.000Z", "2026-03-02T14:00:00.000Z")
            ]
        );
        assert!(ans
            .busy
            .iter()
            .all(|b| b.selected_calendar_id == "a" && b.source == "google_calendar"));
    }

    #[test]
    fn a_route_serves_each_user_from_its_source_and_shadow_compares() {
        let q = Query::new(
            Selection::Ids(vec!["sql".into(), "old".into(), "gone".into()]),
            t(10, 0).and_utc(),
            t(18, 0).and_utc(),
            10,
        )
        .unwrap();
        let legacy = |busy: &str| {
            Some(LegacyCell {
                found: true,
                calendar: Some(busy.to_string()),
            })
        };
        // User 1 reads from SQL, user 2 from the legacy cache.
        let mut on_sql = healthy("sql", "o1");
        on_sql.legacy = legacy(r#"{"busy":[{"start":"2026-03-02T10:00:00Z","end":"2026-03-02T11:30:00Z"}]}"#);
        let mut on_legacy = healthy("old", "o2");
        on_legacy.user_id = 2;
        on_legacy.legacy = legacy(r#"{"busy":[{"start":"2026-03-02T15:00:00Z","end":"2026-03-02T16:00:00Z"}]}"#);
        let mut missing = healthy("gone", "o3");
        missing.user_id = 2;
        missing.legacy = Some(LegacyCell {
            found: false,
            calendar: None,
        });
        let flags = HashMap::from([(1, true), (2, true)]);
        let sql = HashMap::from([(1, true), (2, false)]);
        let route = Route {
            sql: &sql,
            shadow: true,
            legacy_end: t(23, 0),
        };
        let ans = assemble(
            &q,
            vec![on_sql, on_legacy, missing],
            &flags,
            Some(&route),
            t(9, 0),
            &bounds(DAY),
        );
        assert_eq!(ans.served, vec!["sql", "old"]);
        assert_eq!(ans.legacy_served, Some(vec!["old".to_string()]));
        assert_eq!(ans.uncached, vec![("gone".to_string(), Uncached::LegacyMiss)]);
        let old: Vec<&str> = ans
            .busy
            .iter()
            .filter(|b| b.selected_calendar_id == "old")
            .map(|b| b.start.as_str())
            .collect();
        assert_eq!(old, vec!["2026-03-02T15:00:00.000Z"]);
        let report = ans.shadow.unwrap();
        assert_eq!((report.compared, report.diverged, report.not_comparable), (2, 2, 0));
        let kinds: Vec<(&str, &str, &str)> = report
            .divergences
            .iter()
            .map(|(served, d)| (*served, d.calendar.as_str(), d.kind))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("sql", "sql", "missing_block"), // 13:00-14:00 is busy in SQL only
                ("legacy", "old", "extra_block"),
                ("legacy", "old", "missing_block"),
                ("legacy", "old", "missing_block"),
            ]
        );
        // Past the legacy key's window: not answered from the legacy row.
        let route = Route {
            legacy_end: t(17, 0),
            ..route
        };
        let mut on_legacy = healthy("old", "o2");
        on_legacy.user_id = 2;
        on_legacy.legacy = legacy(r#"{"busy":[]}"#);
        let q = Query::new(
            Selection::Ids(vec!["old".into()]),
            t(10, 0).and_utc(),
            t(18, 0).and_utc(),
            10,
        )
        .unwrap();
        let ans = assemble(&q, vec![on_legacy], &flags, Some(&route), t(9, 0), &bounds(DAY));
        assert_eq!(ans.uncached, vec![("old".to_string(), Uncached::OutOfWindow)]);
    }

    #[test]
    fn query_validation() {
        let (a, b) = (t(10, 0).and_utc(), t(11, 0).and_utc());
        let err = |s, x, y| Query::new(s, x, y, 2).unwrap_err().to_string();
        assert_eq!(
            err(Selection::Ids(vec!["a".into()]), b, a),
            "timeMax must be after timeMin"
        );
        assert_eq!(
            err(Selection::Ids(vec!["a".into()]), a, a),
            "timeMax must be after timeMin"
        );
        assert!(err(Selection::Ids(vec![]), a, b).contains("must not be empty"));
        assert!(err(Selection::Ids(vec!["a".into(), "b".into(), "c".into()]), a, b).contains("at most 2"));
        assert!(err(Selection::Ids(vec![" ".into()]), a, b).contains("non-empty"));
        assert!(err(
            Selection::User {
                user_id: 0,
                event_type_id: None
            },
            a,
            b
        )
        .contains("positive"));
    }
}
