//! Deciding what each calendar needs (pure logic, no I/O).

use std::time::Duration;

use chrono::NaiveDateTime;

/// One `SelectedCalendar` row as renewal sees it.
#[derive(Debug, Clone)]
pub struct Row {
    pub id: String,
    pub user_id: i32,
    pub integration: String,
    pub external_id: String,
    pub credential_id: Option<i32>,
    pub channel_id: Option<String>,
    pub channel_expiration: Option<NaiveDateTime>,
    pub sub_errors: i32,
    pub sub_error_at: Option<NaiveDateTime>,
    pub synced_at: Option<NaiveDateTime>,
    pub sync_error_at: Option<NaiveDateTime>,
    pub subscribed_at: Option<NaiveDateTime>,
    pub credential_ok: bool,
    /// Consecutive failed syncs.
    pub sync_errors: i32,
    /// The end of the window the last full sync covered (owner rows only).
    pub window_end: Option<NaiveDateTime>,
}

/// The rows of one provider calendar for one user, owner first.
#[derive(Debug, Clone)]
pub struct Calendar {
    pub rows: Vec<Row>,
}

impl Calendar {
    /// The row holding the cached events.
    pub fn owner(&self) -> &Row {
        &self.rows[0]
    }

    /// The calendar's channel: the owner's, else any row's.
    pub fn channel(&self) -> Option<&Row> {
        self.rows.iter().find(|r| r.channel_id.is_some())
    }
}

/// Groups rows ordered by (user, integration, external id), owner first, into calendars.
pub fn group(rows: Vec<Row>) -> Vec<Calendar> {
    let mut out: Vec<Calendar> = Vec::new();
    for row in rows {
        match out.last_mut() {
            Some(c)
                if c.rows[0].user_id == row.user_id
                    && c.rows[0].integration == row.integration
                    && c.rows[0].external_id == row.external_id =>
            {
                c.rows.push(row)
            }
            _ => out.push(Calendar { rows: vec![row] }),
        }
    }
    out
}

/// What a calendar needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Plan {
    /// Should be watched and has no channel: subscribe and sync.
    Subscribe,
    /// Its channel is missing on some rows, expired, or expires within the margin: renew it.
    Renew,
    /// Some rows of the calendar lack its channel: share it with them.
    Share,
    /// Should not be watched but is: stop the channel and forget the cached rows.
    Stop,
    /// Subscribing failed repeatedly: wait out the pause.
    Paused,
    /// Nothing to do.
    Healthy,
    /// Not watched and should not be.
    Idle,
}

/// Renewal settings.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Renew channels expiring within this margin.
    pub margin: Duration,
    /// Consecutive subscribe failures that pause a calendar.
    pub max_failures: i32,
    /// How long the pause lasts.
    pub pause: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            margin: Duration::from_secs(24 * 3600),
            max_failures: 3,
            pause: Duration::from_secs(24 * 3600),
        }
    }
}

/// Whether calsync should keep this calendar watched: `wanted` when its user's flag is on and its
/// provider can watch it at all.
pub fn should_watch(cal: &Calendar, wanted: bool) -> bool {
    wanted && cal.rows.iter().any(|r| r.credential_ok)
}

/// Decides what `cal` needs at `now`.
pub fn plan(cal: &Calendar, wanted: bool, now: NaiveDateTime, policy: &Policy) -> Plan {
    let channel = cal.channel();
    if !should_watch(cal, wanted) {
        return if channel.is_some() { Plan::Stop } else { Plan::Idle };
    }
    let errors = cal.rows.iter().map(|r| r.sub_errors).max().unwrap_or(0);
    let last_error = cal.rows.iter().filter_map(|r| r.sub_error_at).max();
    let pause = chrono::Duration::from_std(policy.pause).unwrap_or_default();
    if errors >= policy.max_failures && last_error.is_some_and(|at| at > now - pause) {
        return Plan::Paused;
    }
    let Some(ch) = channel else { return Plan::Subscribe };
    let margin = chrono::Duration::from_std(policy.margin).unwrap_or_default();
    if ch.channel_expiration.is_none_or(|exp| exp <= now + margin) {
        return Plan::Renew;
    }
    if cal.rows.iter().any(|r| r.channel_id != ch.channel_id) {
        return Plan::Share;
    }
    Plan::Healthy
}

/// A calendar's health, as `calsync status` shows it.
pub fn health(cal: &Calendar, now: NaiveDateTime, margin: Duration, stale_after: Duration) -> &'static str {
    let o = cal.owner();
    let Some(ch) = cal.channel() else { return "unsubscribed" };
    let failing = o.sync_error_at.is_some_and(|e| o.synced_at.is_none_or(|s| e >= s)) || o.sub_errors > 0;
    if failing || !o.credential_ok {
        return "failing";
    }
    let margin = chrono::Duration::from_std(margin).unwrap_or_default();
    if ch.channel_expiration.is_none_or(|exp| exp <= now + margin) {
        return "expiring";
    }
    let confirmed = match (o.synced_at, ch.subscribed_at) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    let stale = chrono::Duration::from_std(stale_after).unwrap_or_default();
    if o.synced_at.is_none() || confirmed.is_none_or(|c| c < now - stale) {
        return "stale";
    }
    "healthy"
}

/// The health of a polled calendar (no channel): `unpolled` before its first poll, `failing`,
/// `stale` when its last successful poll is older than `stale_after`, else `healthy`.
pub fn polled_health(cal: &Calendar, now: NaiveDateTime, stale_after: Duration) -> &'static str {
    let o = cal.owner();
    let failing = o.sync_error_at.is_some_and(|e| o.synced_at.is_none_or(|s| e >= s));
    if failing || !o.credential_ok {
        return "failing";
    }
    let stale = chrono::Duration::from_std(stale_after).unwrap_or_default();
    match o.synced_at {
        None => "unpolled",
        Some(s) if s < now - stale => "stale",
        Some(_) => "healthy",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn t(h: i64) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2026, 6, 1)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            + chrono::Duration::hours(h)
    }

    fn row(id: &str, ext: &str) -> Row {
        Row {
            id: id.into(),
            user_id: 1,
            integration: "some_calendar".into(),
            external_id: ext.into(),
            credential_id: Some(1),
            channel_id: None,
            channel_expiration: None,
            sub_errors: 0,
            sub_error_at: None,
            synced_at: None,
            sync_error_at: None,
            subscribed_at: None,
            credential_ok: true,
            sync_errors: 0,
            window_end: None,
        }
    }

    fn watched(id: &str, exp_h: i64) -> Row {
        Row {
            channel_id: Some("ch".into()),
            channel_expiration: Some(t(exp_h)),
            ..row(id, "a@x.com")
        }
    }

    #[test]
    fn groups_adjacent_rows() {
        let cals = group(vec![row("1", "a"), row("2", "a"), row("3", "b")]);
        assert_eq!(cals.len(), 2);
        assert_eq!(cals[0].rows.len(), 2);
        assert_eq!(cals[1].owner().id, "3");
    }

    #[test]
    fn plans() {
        let p = Policy::default();
        let now = t(0);
        let cal = |rows: Vec<Row>| Calendar { rows };
        assert_eq!(plan(&cal(vec![row("1", "a@x.com")]), true, now, &p), Plan::Subscribe);
        assert_eq!(plan(&cal(vec![row("1", "a@x.com")]), false, now, &p), Plan::Idle);
        assert_eq!(plan(&cal(vec![watched("1", 100)]), true, now, &p), Plan::Healthy);
        assert_eq!(plan(&cal(vec![watched("1", 23)]), true, now, &p), Plan::Renew);
        assert_eq!(plan(&cal(vec![watched("1", -1)]), true, now, &p), Plan::Renew);
        assert_eq!(plan(&cal(vec![watched("1", 100)]), false, now, &p), Plan::Stop);
        assert_eq!(
            plan(&cal(vec![watched("1", 100), row("2", "a@x.com")]), true, now, &p),
            Plan::Share
        );
        let mut dead = watched("1", 100);
        dead.credential_ok = false;
        assert_eq!(plan(&cal(vec![dead]), true, now, &p), Plan::Stop);
        let mut failing = row("1", "a@x.com");
        failing.sub_errors = 3;
        failing.sub_error_at = Some(t(-2));
        assert_eq!(plan(&cal(vec![failing.clone()]), true, now, &p), Plan::Paused);
        failing.sub_errors = 2;
        assert_eq!(plan(&cal(vec![failing.clone()]), true, now, &p), Plan::Subscribe);
        failing.sub_errors = 3;
        failing.sub_error_at = Some(t(-25));
        assert_eq!(
            plan(&cal(vec![failing]), true, now, &p),
            Plan::Subscribe,
            "the pause is over"
        );
    }
}
