//! Syncs that run after a webhook has been answered, and a way to wait for them (serverless hosts
//! that freeze the process after the response call `settle()` inside `waitUntil`/`after`).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

/// Counts running background tasks.
#[derive(Default, Clone)]
pub struct Tasks {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    running: AtomicUsize,
    idle: Notify,
}

impl Tasks {
    /// Spawns `task` on the runtime and counts it until it finishes.
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let inner = self.inner.clone();
        inner.running.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            task.await;
            if inner.running.fetch_sub(1, Ordering::SeqCst) == 1 {
                inner.idle.notify_waiters();
            }
        });
    }

    /// Whether no task is running once `limit` has passed at the latest.
    pub async fn idle_within(&self, limit: std::time::Duration) -> bool {
        tokio::time::timeout(limit, self.idle()).await.is_ok()
    }

    /// How many tasks are running.
    pub fn running(&self) -> usize {
        self.inner.running.load(Ordering::SeqCst)
    }

    /// Resolves when no task is running.
    pub async fn idle(&self) {
        loop {
            let notified = self.inner.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.inner.running.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn idle_waits_for_every_task() {
        let tasks = Tasks::default();
        let done = Arc::new(AtomicUsize::new(0));
        for i in 0..5 {
            let done = done.clone();
            tasks.spawn(async move {
                tokio::time::sleep(Duration::from_millis(10 * i)).await;
                done.fetch_add(1, Ordering::SeqCst);
            });
        }
        tasks.idle().await;
        assert_eq!(done.load(Ordering::SeqCst), 5);
        tasks.idle().await; // nothing running: returns at once
    }

    #[tokio::test]
    async fn idle_within_gives_up_on_a_task_that_hangs() {
        let tasks = Tasks::default();
        tasks.spawn(std::future::pending());
        assert!(!tasks.idle_within(Duration::from_millis(20)).await);
        assert_eq!(tasks.running(), 1);
        assert!(Tasks::default().idle_within(Duration::from_millis(1)).await);
    }
}
