//! Polling (CalDAV, iCloud): calendars whose provider has no push are synced incrementally once
//! their last poll is older than the interval. A sync asks the server what changed since its token
//! (one request when nothing did). Calendars of a server that failed as unavailable in this run
//! wait for the next run (iCloud throttles with 503 and 429; `Retry-After` is honoured by the HTTP
//! client), and a failing calendar waits out its backoff. A calendar whose poll fails is recorded
//! `sync_failed`, so reads go live for it: never free.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};

use super::{candidates, plan::Calendar};
use crate::cache::retry_after;
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
    /// Polled successfully.
    pub synced: u64,
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
        let deadline = opts.budget.map(|b| started + b);
        let down: Mutex<HashSet<String>> = Mutex::default();
        let work: Vec<(String, String)> = due
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
            failed: count(Some(false)),
            deferred,
            complete: deferred == 0,
        })
    }
}
