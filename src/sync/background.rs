//! Syncs that run after a webhook has been answered, and a way to wait for them (serverless hosts
//! that freeze the process after the response call `settle()` inside `waitUntil`/`after`).
//!
//! Each task is numbered when it is spawned; a task spawned by a background task (the delivery of
//! the booking changes a sync wrote) takes its parent's number. A wait covers the tasks numbered
//! before it began, never later ones (a steady stream of webhooks must not hold `settle()` up to
//! its timeout), and a task leaves the count however it ends — finished, panicked or dropped with
//! the runtime.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use tracing::instrument::WithSubscriber;

/// Counts running background tasks.
#[derive(Default, Clone)]
pub struct Tasks {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    state: Mutex<State>,
    changed: Notify,
}

#[derive(Default)]
struct State {
    next: u64,
    /// How many tasks of each number run.
    running: BTreeMap<u64, usize>,
}

tokio::task_local! {
    /// The number of the background task this code runs in.
    static NUMBER: u64;
}

/// Takes its task off the running set when dropped: after the task ends, or when it unwinds.
struct Running {
    inner: Arc<Inner>,
    n: u64,
}

impl Drop for Running {
    fn drop(&mut self) {
        let mut s = self.inner.lock();
        if let Some(count) = s.running.get_mut(&self.n) {
            *count -= 1;
            if *count == 0 {
                s.running.remove(&self.n);
            }
        }
        drop(s);
        self.inner.changed.notify_waiters();
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tasks numbered below `upto` still running.
    fn older_than(&self, upto: u64) -> usize {
        self.lock().running.range(..upto).map(|(_, c)| c).sum()
    }
}

impl Tasks {
    /// Spawns `task` on the runtime (logging through the caller's logger) and counts it until it ends.
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let n = {
            let mut s = self.inner.lock();
            let n = NUMBER.try_with(|n| *n).unwrap_or_else(|_| {
                s.next += 1;
                s.next - 1
            });
            *s.running.entry(n).or_default() += 1;
            n
        };
        let running = Running {
            inner: self.inner.clone(),
            n,
        };
        tokio::spawn(
            NUMBER
                .scope(n, async move {
                    let _running = running;
                    task.await;
                })
                .with_current_subscriber(),
        );
    }

    /// Waits up to `limit` for the tasks spawned before this call; returns how many of them still run.
    pub async fn settle(&self, limit: std::time::Duration) -> usize {
        let upto = self.inner.lock().next;
        let _ = tokio::time::timeout(limit, self.idle_before(upto)).await;
        self.inner.older_than(upto)
    }

    /// How many tasks are running.
    #[cfg(test)]
    fn running(&self) -> usize {
        self.inner.lock().running.values().sum()
    }

    /// Resolves when no task is running.
    #[cfg(test)]
    async fn idle(&self) {
        self.idle_before(u64::MAX).await
    }

    async fn idle_before(&self, upto: u64) {
        loop {
            let notified = self.inner.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.inner.older_than(upto) == 0 {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
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
    async fn settle_gives_up_on_a_task_that_hangs() {
        let tasks = Tasks::default();
        tasks.spawn(std::future::pending());
        assert_eq!(tasks.settle(Duration::from_millis(20)).await, 1);
        assert_eq!(tasks.running(), 1);
        assert_eq!(Tasks::default().settle(Duration::from_millis(1)).await, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_task_leaves_the_count() {
        let tasks = Tasks::default();
        tasks.spawn(async { panic!("a task that panics (expected in this test)") });
        assert_eq!(tasks.settle(Duration::from_secs(5)).await, 0);
        assert_eq!(tasks.running(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn settle_does_not_wait_for_tasks_started_after_it() {
        let tasks = Tasks::default();
        tasks.spawn(tokio::time::sleep(Duration::from_millis(100)));
        let feeder = {
            let tasks = tasks.clone();
            tokio::spawn(async move {
                // A new 100 ms task every 50 ms, for longer than the settle's limit.
                for _ in 0..100 {
                    tasks.spawn(tokio::time::sleep(Duration::from_millis(100)));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
        };
        tokio::task::yield_now().await;
        let t0 = tokio::time::Instant::now();
        let before = tasks.settle(Duration::from_secs(3)).await;
        assert_eq!(before, 0);
        assert!(t0.elapsed() < Duration::from_millis(200), "{:?}", t0.elapsed());
        feeder.abort();
    }

    #[tokio::test]
    async fn settle_waits_for_what_a_covered_task_spawns() {
        let tasks = Tasks::default();
        let done = Arc::new(AtomicUsize::new(0));
        let (inner, d) = (tasks.clone(), done.clone());
        tasks.spawn(async move {
            inner.spawn(async move {
                tokio::time::sleep(Duration::from_millis(30)).await;
                d.fetch_add(1, Ordering::SeqCst);
            });
        });
        assert_eq!(tasks.settle(Duration::from_secs(5)).await, 0);
        assert_eq!(done.load(Ordering::SeqCst), 1);
    }
}
