//! In-process coalescing of sync requests per calendar (SPEC §6.2).
//!
//! Every request takes a ticket; one sync runs at a time per calendar and covers every ticket taken
//! before it started. A request whose ticket a finished sync already covered returns at once, so a
//! burst that arrives during a sync causes exactly one follow-up sync, not zero and not N.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Gate {
    requested: AtomicU64,
    /// The highest ticket a started sync has covered.
    covered: tokio::sync::Mutex<u64>,
}

/// Coalescing gates, one per calendar key.
#[derive(Default)]
pub struct Gates {
    gates: Mutex<HashMap<String, Arc<Gate>>>,
}

impl Gates {
    fn gate(&self, key: &str) -> Arc<Gate> {
        let mut map = self.gates.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(key.to_string()).or_default().clone()
    }

    fn prune(&self, key: &str) {
        let mut map = self.gates.lock().unwrap_or_else(|p| p.into_inner());
        if map.get(key).is_some_and(|g| Arc::strong_count(g) == 1) {
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
