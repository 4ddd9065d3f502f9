//! Pending marks written before a webhook answers (SPEC §6.10), group-committed: notifications
//! that arrive while a mark write is in flight are all written by the next one, in one statement,
//! instead of each queueing its own write and WAL flush. A notification is answered only after a
//! write that started after it arrived has committed, so every acknowledged change is durable.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use sqlx::PgPool;

use crate::db::calendars;
use crate::error::Result;

/// Group-committed pending marks of one process.
#[derive(Default)]
pub struct Marks {
    /// Marks not yet known to be written, numbered in order of arrival.
    queue: Mutex<Vec<(u64, String)>>,
    /// Marks requested so far.
    arrived: AtomicU64,
    /// How many of them committed writes cover; held while a write runs.
    covered: tokio::sync::Mutex<u64>,
}

impl Marks {
    /// Marks row `id` as having an announced change; returns once a write that started after this
    /// call has committed it, or with the error of the write that tried (the webhook then answers
    /// 503 and the provider retries).
    pub async fn mark(&self, pool: &PgPool, id: &str, within: Duration) -> Result<()> {
        let me = {
            let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            let n = self.arrived.fetch_add(1, Ordering::SeqCst) + 1;
            queue.push((n, id.to_string()));
            n
        };
        let mut covered = self.covered.lock().await;
        if *covered >= me {
            return Ok(());
        }
        let (upto, mut ids) = {
            let queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            let ids: Vec<String> = queue.iter().map(|(_, id)| id.clone()).collect();
            (self.arrived.load(Ordering::SeqCst), ids)
        };
        ids.sort_unstable();
        ids.dedup();
        calendars::mark_pending(pool, &ids, within).await?;
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(n, _)| *n > upto);
        *covered = upto;
        Ok(())
    }
}
