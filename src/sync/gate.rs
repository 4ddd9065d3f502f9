//! In-process coalescing of sync requests per calendar (SPEC §6.2).
//!
//! Every request takes a ticket; one sync runs at a time per calendar and covers every ticket taken
//! before it started. A request whose ticket a finished sync already covered returns at once, so a
//! burst that arrives during a sync causes exactly one follow-up sync, not zero and not N.
//!
//! Runs of one key also start at least `min_interval` apart: the first notification of a quiet
//! calendar syncs at once, and a follow-up waits out the rest of the interval (still holding its
//! place), so every notification of a burst spread over that interval joins it. A burst of any
//! shape within one interval therefore costs at most two runs, and the cache trails the provider
//! by at most the interval plus one sync.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

#[derive(Default)]
struct Gate {
    requested: AtomicU64,
    /// The highest ticket a started sync has covered.
    covered: tokio::sync::Mutex<u64>,
    /// When the last run started.
    started: Mutex<Option<Instant>>,
    /// What the key was resolved to, shared by the requests of a burst.
    resolved: tokio::sync::OnceCell<String>,
}

impl Gate {
    fn started(&self) -> Option<Instant> {
        *self.started.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Coalescing gates, one per calendar key.
#[derive(Default)]
pub struct Gates {
    gates: Mutex<HashMap<String, Arc<Gate>>>,
    min_interval: Duration,
}

impl Gates {
    /// Gates whose runs of one key start at least `min_interval` apart.
    pub fn new(min_interval: Duration) -> Self {
        Gates {
            gates: Mutex::default(),
            min_interval,
        }
    }

    fn gate(&self, key: &str) -> Arc<Gate> {
        let mut map = self.gates.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(key.to_string()).or_default().clone()
    }

    /// Forgets gates nobody holds whose last run started more than the interval ago (a gate
    /// remembers its last start until then).
    fn prune(&self, key: &str) {
        let idle =
            |g: &Arc<Gate>| Arc::strong_count(g) == 1 && g.started().is_none_or(|t| t.elapsed() >= self.min_interval);
        let mut map = self.gates.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 64 {
            map.retain(|_, g| !idle(g));
        } else if map.get(key).is_some_and(idle) {
            map.remove(key);
        }
    }

    /// Takes a ticket for `key` now; runs started after this moment cover it.
    pub fn ticket(&self, key: &str) -> Ticket {
        let gate = self.gate(key);
        let number = gate.requested.fetch_add(1, Ordering::SeqCst) + 1;
        Ticket {
            gate,
            number,
            key: key.to_string(),
        }
    }

    /// Runs `work` for `key` unless a sync that started after this call already ran; then `None`.
    /// Whatever `work` returns (success or failure) covers every request made before it started.
    pub async fn run<T, F, Fut>(&self, key: &str, work: F) -> Option<T>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        self.run_ticket(self.ticket(key), work).await
    }

    /// Like [`Gates::run`], with a ticket taken earlier.
    pub async fn run_ticket<T, F, Fut>(&self, ticket: Ticket, work: F) -> Option<T>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        let Ticket { gate, number, key } = ticket;
        let out = {
            let mut covered = gate.covered.lock().await;
            if *covered >= number {
                None
            } else {
                if let Some(last) = gate.started() {
                    let due = last + self.min_interval;
                    if due > Instant::now() {
                        tokio::time::sleep_until(due).await;
                    }
                }
                *gate.started.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
                *covered = gate.requested.load(Ordering::SeqCst);
                Some(work().await)
            }
        };
        drop(gate);
        self.prune(&key);
        out
    }
}

/// A place in a calendar's queue of sync requests.
pub struct Ticket {
    gate: Arc<Gate>,
    number: u64,
    key: String,
}

impl Ticket {
    /// Resolves what the key stands for (for example the calendar a channel watches) once for all
    /// the requests of a burst: concurrent requests wait for one `resolve`, later ones reuse its
    /// answer while the gate lives (at most about one interval after its last run). Failures are
    /// not kept.
    pub async fn resolve<E, Fut>(&self, resolve: impl FnOnce() -> Fut) -> Result<String, E>
    where
        Fut: Future<Output = Result<String, E>>,
    {
        self.gate.resolved.get_or_try_init(resolve).await.cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_costs_at_most_two_runs() {
        let gates = Arc::new(Gates::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..200 {
            let (gates, runs) = (gates.clone(), runs.clone());
            tasks.push(tokio::spawn(async move {
                gates
                    .run("cal", || async {
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    })
                    .await
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let n = runs.load(Ordering::SeqCst);
        assert!((1..=2).contains(&n), "{n} runs");
        assert!(gates.gates.lock().unwrap().is_empty(), "gates are pruned when idle");
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_spread_over_the_interval_costs_two_runs_and_the_first_is_not_delayed() {
        let gates = Arc::new(Gates::new(Duration::from_millis(100)));
        let starts = Arc::new(Mutex::new(Vec::new()));
        let t0 = tokio::time::Instant::now();
        let mut tasks = Vec::new();
        for i in 0..10u64 {
            let (gates, starts) = (gates.clone(), starts.clone());
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(i * 10)).await;
                gates
                    .run("cal", || async move {
                        starts.lock().unwrap().push(t0.elapsed());
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    })
                    .await
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let starts = starts.lock().unwrap().clone();
        assert_eq!(starts.len(), 2, "{starts:?}");
        assert!(
            starts[0] < Duration::from_millis(1),
            "the first run starts at once: {starts:?}"
        );
        assert!(
            starts[1] >= Duration::from_millis(100),
            "the follow-up waits out the interval: {starts:?}"
        );
        // After a quiet interval the next request runs at once again.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let t1 = tokio::time::Instant::now();
        gates.run("cal", || async {}).await.unwrap();
        assert!(t1.elapsed() < Duration::from_millis(1));
    }

    #[tokio::test]
    async fn a_request_during_a_run_gets_exactly_one_follow_up() {
        let gates = Arc::new(Gates::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let first = {
            let (gates, runs) = (gates.clone(), runs.clone());
            tokio::spawn(async move {
                gates
                    .run("cal", || async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        rx.await.ok();
                    })
                    .await
            })
        };
        while runs.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        // Three requests arrive while the first run is in progress.
        let mut later = Vec::new();
        for _ in 0..3 {
            let (gates, runs) = (gates.clone(), runs.clone());
            later.push(tokio::spawn(async move {
                gates
                    .run("cal", || async move { runs.fetch_add(1, Ordering::SeqCst) })
                    .await
            }));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        tx.send(()).unwrap();
        first.await.unwrap().unwrap();
        let ran: usize = {
            let mut n = 0;
            for t in later {
                if t.await.unwrap().is_some() {
                    n += 1;
                }
            }
            n
        };
        assert_eq!(ran, 1);
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }
}
