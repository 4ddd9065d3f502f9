//! Polling (CalDAV, iCloud): calendars whose provider has no push are synced incrementally once
//! their last poll is older than the interval. A sync asks the server what changed since its token
//! (one request when nothing did). Calendars of a server that failed as unavailable in this run
//! wait for the next run (iCloud throttles with 503 and 429; `Retry-After` is honoured by the HTTP
//! client), and a failing calendar waits out its backoff. A calendar whose poll fails is recorded
//! `sync_failed`, so reads go live for it: never free.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};

use super::{candidates, plan::Calendar};
use crate::cache::retry_after;
use crate::db::calendars;
use crate::error::{Error, Result};
use crate::flags::SUBSCRIPTION_CACHE;
use crate::sync::Engine;
use crate::time::now_db;

/// Options of one poll run.
#[derive(Debug, Clone)]
pub struct PollOptions {
    /// A calendar is polled once its last successful poll is this old.
    pub interval: Duration,
    /// Concurrent polls.
    pub concurrency: usize,
    /// Stop starting new polls once the run has lasted this long.
    pub budget: Option<Duration>,
}

impl Default for PollOptions {
    fn default() -> Self {
        PollOptions {
            interval: Duration::from_secs(5 * 60),
            concurrency: 4,
            budget: None,
        }
    }
}

/// What a poll run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollReport {
    /// Polled calendars whose user has the cache on.
    pub checked: u64,
    /// Of those, due for a poll.
    pub due: u64,
    /// Polled successfully with a sync.
    pub synced: u64,
    /// Found unchanged by their account's one request (several calendars of one account share it).
    pub unchanged: u64,
    /// Polls that failed (the calendar reads `sync_failed` until a poll succeeds).
    pub failed: u64,
    /// Left for the next run: the budget ran out, or their server failed earlier in this run.
    pub deferred: u64,
    /// Every due calendar was polled.
    pub complete: bool,
}

/// The server a calendar lives on (its URL's host), for backing off per server.
fn server(external_id: &str) -> String {
    reqwest::Url::parse(external_id)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default()
}

impl Engine {
    /// Of the due calendars, those an account-wide request shows unchanged since their cursor,
    /// recorded as polled now (accounts with one due calendar are left to their sync, which costs
    /// the same one request). Calendars that are failing or whose window must slide are synced.
    async fn settle_unchanged(&self, due: &[&Calendar], now: chrono::NaiveDateTime) -> HashSet<String> {
        let mut accounts: HashMap<(i32, &str), Vec<&Calendar>> = HashMap::new();
        for c in due {
            let o = c.owner();
            if let (Some(credential), None) = (o.credential_id, o.sync_error_at) {
                if !self.window_due(&o.id, o.window_end, now) {
                    accounts
                        .entry((credential, o.integration.as_str()))
                        .or_default()
                        .push(c);
                }
            }
        }
        accounts.retain(|_, cals| cals.len() > 1);
        let ids: Vec<String> = accounts.values().flatten().map(|c| c.owner().id.clone()).collect();
        let mut settled = HashSet::new();
        if ids.is_empty() {
            return settled;
        }
        let cursors = match calendars::cursors(&self.pool, &ids).await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(code = e.code(), "cursors not read; every due calendar is synced");
                return settled;
            }
        };
        for ((credential, integration), cals) in accounts {
            let (Ok(provider), Ok(access)) = (
                self.provider(integration),
                self.credential_access(integration, credential).await,
            ) else {
                continue; // the syncs meet (and record) the same failure
            };
            let asked: Vec<(&Calendar, &str)> = cals
                .iter()
                .filter_map(|c| Some((*c, cursors.get(&c.owner().id)?.as_str())))
                .collect();
            let list: Vec<(&str, &str)> = asked
                .iter()
                .map(|(c, cur)| (c.owner().external_id.as_str(), *cur))
                .collect();
            let Ok(same) = provider.unchanged(&access, &list).await else {
                continue;
            };
            for ((c, cursor), same) in asked.into_iter().zip(same) {
                let rows: Vec<String> = c.rows.iter().map(|r| r.id.clone()).collect();
                if same
                    && calendars::mark_polled(&self.pool, &rows, cursor, now)
                        .await
                        .unwrap_or(false)
                {
                    settled.insert(c.owner().id.clone());
                }
            }
        }
        settled
    }

    /// One poll run over every polled calendar whose user has `calendar-subscription-cache` on.
    pub async fn poll(&self, opts: &PollOptions) -> Result<PollReport> {
        let started = Instant::now();
        let polled: Vec<&'static str> = self
            .providers()
            .map(|p| p.integration())
            .filter(|i| crate::providers::polled(i))
            .collect();
        let all = candidates(&self.pool, &polled, None).await?;
        let mut users: Vec<i32> = all.iter().map(|c| c.owner().user_id).collect();
        users.sort_unstable();
        users.dedup();
        let flags = self.flags.for_users(&self.pool, SUBSCRIPTION_CACHE, &users).await?;
        let now = now_db();
        let interval = chrono::Duration::from_std(opts.interval).unwrap_or_default();
        let on: Vec<&Calendar> = all
            .iter()
            .filter(|c| flags.get(&c.owner().user_id).copied().unwrap_or(false) && c.owner().credential_ok)
            .collect();
        let mut due: Vec<&Calendar> = on
            .iter()
            .copied()
            .filter(|c| {
                let o = c.owner();
                let failing = o.sync_error_at.filter(|e| o.synced_at.is_none_or(|s| *e >= s));
                match failing {
                    Some(at) => now >= at + chrono::Duration::from_std(retry_after(o.sync_errors)).unwrap_or_default(),
                    None => o.synced_at.is_none_or(|t| t + interval <= now),
                }
            })
            .collect();
        // The longest unpolled first.
        due.sort_by_key(|c| c.owner().synced_at);
        let settled = self.settle_unchanged(&due, now).await;
        let rest: Vec<&Calendar> = due
            .iter()
            .copied()
            .filter(|c| !settled.contains(&c.owner().id))
            .collect();
        let deadline = opts.budget.map(|b| started + b);
        let down: Mutex<HashSet<String>> = Mutex::default();
        let work: Vec<(String, String)> = rest
            .iter()
            .map(|c| (c.owner().id.clone(), server(&c.owner().external_id)))
            .collect();
        let down = &down;
        let outcomes: Vec<Option<bool>> = stream::iter(work)
            .map(|(id, host)| async move {
                let held = down.lock().unwrap_or_else(|p| p.into_inner()).contains(&host);
                if held || deadline.is_some_and(|d| Instant::now() >= d) {
                    return None;
                }
                match self.sync(&id, false).await {
                    Ok(_) => Some(true),
                    Err(e) => {
                        if matches!(e, Error::ProviderUnavailable(_)) {
                            down.lock().unwrap_or_else(|p| p.into_inner()).insert(host);
                        }
                        // The failure is logged once, with its code, where the sync records it.
                        Some(false)
                    }
                }
            })
            .buffer_unordered(opts.concurrency.max(1))
            .collect()
            .await;
        let count = |want: Option<bool>| outcomes.iter().filter(|o| **o == want).count() as u64;
        let deferred = count(None);
        Ok(PollReport {
            checked: on.len() as u64,
            due: due.len() as u64,
            synced: count(Some(true)),
            unchanged: settled.len() as u64,
            failed: count(Some(false)),
            deferred,
            complete: deferred == 0,
        })
    }
}
