//! Prometheus metrics (SPEC §13): what calsync did since the process started, in the Prometheus
//! text exposition format, every name prefixed `calsync_`. Labels take a few fixed values each
//! (provider, outcome, reason, endpoint, HTTP status...): never calendar, user or event ids.

use prometheus::{GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

/// Every metric family calsync keeps.
pub struct Metrics {
    registry: Registry,
    /// Webhook requests by provider and the HTTP status of the answer.
    pub webhooks: IntCounterVec,
    /// Webhook notifications by provider and what calsync made of them (see [`NOTIFICATION_OUTCOMES`]).
    pub notifications: IntCounterVec,
    /// Syncs by provider, kind (`full` / `incremental`) and outcome (`ok`, `failed`, `restarted`:
    /// it started over, as a full sync or from a newer token; `coalesced`: another sync covered it).
    pub syncs: IntCounterVec,
    /// How long syncs took, by provider and kind.
    pub sync_seconds: HistogramVec,
    /// From a change's `updated` time at the provider to the commit of the sync that cached it.
    pub propagation_seconds: HistogramVec,
    /// Reads (`getCachedAvailability`) by outcome (`ok` or the error code).
    pub reads: IntCounterVec,
    /// Reads answered, by the server that answered (`primary` / `replica`).
    pub reads_served: IntCounterVec,
    /// Reads that left a replica for the primary, by replica and reason (`replicas::Fallback`).
    pub replica_fallbacks: IntCounterVec,
    /// The replay lag a read (or probe) of each replica measured last, in seconds.
    pub replica_lag: GaugeVec,
    /// Calendars reads answered, by source (`sql` / `legacy`).
    pub served: IntCounterVec,
    /// Calendars reads did not answer, by reason.
    pub uncached: IntCounterVec,
    /// Provider HTTP requests by endpoint and status (`error`: no answer).
    pub requests: IntCounterVec,
    /// Provider requests attempted again, by endpoint.
    pub retries: IntCounterVec,
    /// OAuth token refreshes by provider and outcome.
    pub refreshes: IntCounterVec,
    /// What renewal passes did to calendars, by action.
    pub renewals: IntCounterVec,
    /// Shadow reads' comparisons by outcome (`equal`, `diverged`, `not_comparable`).
    pub shadow: IntCounterVec,
    /// Differences shadow reads found, by kind.
    pub divergences: IntCounterVec,
    /// Read at each scrape: changes announced and not yet synced; booking changes waiting for the
    /// app; database connections by pool and state.
    pub pending: IntGaugeVec,
    pub outbox: IntGaugeVec,
    pub connections: IntGaugeVec,
    /// Read at each scrape: pending changes older than the grace.
    pub overdue: IntGaugeVec,
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("a valid metric");
    registry
        .register(Box::new(c.clone()))
        .expect("a metric registered once");
    c
}

fn gauge(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("a valid metric");
    registry
        .register(Box::new(g.clone()))
        .expect("a metric registered once");
    g
}

fn histogram(registry: &Registry, name: &str, help: &str, labels: &[&str], buckets: Vec<f64>) -> HistogramVec {
    let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels).expect("a valid metric");
    registry
        .register(Box::new(h.clone()))
        .expect("a metric registered once");
    h
}

impl Default for Metrics {
    fn default() -> Self {
        let r = Registry::new_custom(Some("calsync".into()), None).expect("a valid prefix");
        let seconds = vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];
        let m = Metrics {
            webhooks: counter(
                &r,
                "webhooks_total",
                "Webhook requests by provider and the HTTP status answered.",
                &["provider", "status"],
            ),
            notifications: counter(
                &r,
                "webhook_notifications_total",
                "Webhook notifications by provider and outcome (accepted, handshake, ignored, unknown, forged, mismatch, malformed, unavailable, unconfigured).",
                &["provider", "outcome"],
            ),
            syncs: counter(
                &r,
                "syncs_total",
                "Syncs by provider, kind (full, incremental) and outcome (ok, failed, restarted, coalesced).",
                &["provider", "kind", "outcome"],
            ),
            sync_seconds: histogram(
                &r,
                "sync_duration_seconds",
                "How long syncs took, by provider and kind.",
                &["provider", "kind"],
                seconds.clone(),
            ),
            propagation_seconds: histogram(
                &r,
                "propagation_lag_seconds",
                "From an event's updated time at the provider to the commit of the incremental sync that cached it.",
                &["provider"],
                seconds,
            ),
            reads: counter(
                &r,
                "reads_total",
                "Availability reads by outcome (ok or the error code).",
                &["outcome"],
            ),
            reads_served: counter(
                &r,
                "reads_served_total",
                "Availability reads answered, by the server that answered (primary, replica).",
                &["by"],
            ),
            replica_fallbacks: counter(
                &r,
                "replica_fallbacks_total",
                "Reads that left a replica for the primary, by replica (its number in readDatabaseUrl) and reason (down, lagging, behind_sync, not_standby, no_rows).",
                &["replica", "reason"],
            ),
            replica_lag: {
                let g = GaugeVec::new(
                    Opts::new(
                        "replica_lag_seconds",
                        "The replay lag the last read or probe of each replica measured (0: it had replayed everything the primary sent).",
                    ),
                    &["replica"],
                )
                .expect("a valid metric");
                r.register(Box::new(g.clone())).expect("a metric registered once");
                g
            },
            served: counter(
                &r,
                "read_calendars_served_total",
                "Calendars answered by reads, by source (sql, legacy).",
                &["source"],
            ),
            uncached: counter(
                &r,
                "read_calendars_uncached_total",
                "Calendars reads could not answer, by reason.",
                &["reason"],
            ),
            requests: counter(
                &r,
                "provider_requests_total",
                "Provider HTTP requests by endpoint and status (error: no answer).",
                &["endpoint", "status"],
            ),
            retries: counter(
                &r,
                "provider_retries_total",
                "Provider requests attempted again after a retryable failure, by endpoint.",
                &["endpoint"],
            ),
            refreshes: counter(
                &r,
                "token_refreshes_total",
                "OAuth access-token refreshes by provider and outcome.",
                &["provider", "outcome"],
            ),
            renewals: counter(
                &r,
                "renewals_total",
                "What renewal passes did to calendars, by action.",
                &["action"],
            ),
            shadow: counter(
                &r,
                "shadow_comparisons_total",
                "Shadow reads' comparisons of the legacy JSON cache with the SQL cache, by outcome.",
                &["outcome"],
            ),
            divergences: counter(
                &r,
                "shadow_divergences_total",
                "Differences shadow reads found, by kind (missing_block, extra_block, different_bounds).",
                &["kind"],
            ),
            pending: gauge(
                &r,
                "pending_notifications",
                "Calendars with a change announced by a webhook that no sync has covered yet.",
                &[],
            ),
            outbox: gauge(
                &r,
                "booking_changes_waiting",
                "Booking changes in the two-way sync outbox not yet acknowledged, by state (ready, held).",
                &["state"],
            ),
            connections: gauge(
                &r,
                "pool_connections",
                "Database connections by pool (front: reads and answers; background) and state (in_use, idle).",
                &["pool", "state"],
            ),
            overdue: gauge(
                &r,
                "pending_notifications_overdue",
                "Calendars whose announced change has waited for its sync longer than pendingGraceMs (reads report them stale).",
                &[],
            ),
            registry: r,
        };
        m.start_at_zero();
        m
    }
}

/// The `action` labels of `calsync_renewals_total`, in the order [`Metrics::count_renewal`] takes
/// its counts.
pub const RENEWAL_ACTIONS: [&str; 9] = [
    "subscribed",
    "renewed",
    "shared",
    "stopped",
    "failed",
    "paused",
    "resynced",
    "orphan_stopped",
    "deferred",
];

/// What a webhook made of a notification: `accepted` (a change, marked and synced), `handshake`
/// (Google's `sync`, Graph's validation), `ignored` (a state calsync does not act on), `unknown`
/// (a channel or subscription calsync does not hold, for example one stopped lately), `forged`
/// (a missing or wrong channel token or clientState), `mismatch` (a Google resource id that is
/// not the channel's), `malformed` (missing headers, a body that is not a notification batch),
/// `unavailable` (the database did not answer: the provider retries), `unconfigured` (no webhook
/// secret configured).
pub const NOTIFICATION_OUTCOMES: [&str; 9] = [
    "accepted",
    "handshake",
    "ignored",
    "unknown",
    "forged",
    "mismatch",
    "malformed",
    "unavailable",
    "unconfigured",
];

/// What one read answered, in counts (see [`Metrics::count_read`]).
#[derive(Debug, Default)]
pub struct ReadCounts<'a> {
    /// Calendars served from the SQL cache.
    pub sql: u64,
    /// Calendars served from the legacy JSON cache.
    pub legacy: u64,
    /// The reason of each calendar not served.
    pub uncached: Vec<&'a str>,
    /// With a shadow read: what the comparison found.
    pub shadow: Option<ShadowCounts<'a>>,
}

/// What a shadow read's comparison found.
#[derive(Debug, Default)]
pub struct ShadowCounts<'a> {
    pub compared: u64,
    pub diverged: u64,
    pub not_comparable: u64,
    /// The kind of each difference (`missing_block`, ...).
    pub kinds: Vec<&'a str>,
}

impl Metrics {
    /// Creates every series whose labels are known in advance at 0, so that rates and alerts see
    /// a series before its first event (Prometheus's instrumentation guidance). Provider request
    /// series start with `status="error"` (no answer) only: their other statuses are whatever the
    /// provider answers.
    fn start_at_zero(&self) {
        const CODES: [&str; 9] = [
            "ok",
            "DB_UNAVAILABLE",
            "DB_ERROR",
            "INVALID_ARGUMENT",
            "SCHEMA_MISMATCH",
            "NOT_FOUND",
            "PROVIDER_AUTH",
            "PROVIDER_UNAVAILABLE",
            "CLOSED",
        ];
        for c in CODES {
            self.reads.with_label_values(&[c]);
        }
        for s in ["sql", "legacy"] {
            self.served.with_label_values(&[s]);
        }
        for by in ["primary", "replica"] {
            self.reads_served.with_label_values(&[by]);
        }
        for u in crate::model::Uncached::ALL {
            self.uncached.with_label_values(&[u.as_str()]);
        }
        for a in RENEWAL_ACTIONS {
            self.renewals.with_label_values(&[a]);
        }
        for o in ["equal", "diverged", "not_comparable"] {
            self.shadow.with_label_values(&[o]);
        }
        for k in ["missing_block", "extra_block", "different_bounds"] {
            self.divergences.with_label_values(&[k]);
        }
        self.pending.with_label_values(&[] as &[&str]);
        self.overdue.with_label_values(&[] as &[&str]);
        for s in ["ready", "held"] {
            self.outbox.with_label_values(&[s]);
        }
        for pool in ["front", "background"] {
            for s in ["in_use", "idle"] {
                self.connections.with_label_values(&[pool, s]);
            }
        }
    }

    /// Creates the series of replicas `1..=n` at 0, with every fallback `reason` (the engine calls
    /// it with the number of `readDatabaseUrl`s).
    pub fn start_replicas(&self, n: usize, reasons: &[&str]) {
        for i in 1..=n {
            let label = i.to_string();
            for why in reasons {
                self.replica_fallbacks.with_label_values(&[label.as_str(), why]);
            }
            self.replica_lag.with_label_values(&[&label]);
        }
    }

    /// Creates the series of one provider (its metrics `label`, the `endpoints` it counts
    /// requests under) at 0, as [`Metrics::default`] does for the rest: the engine calls it for
    /// each registered provider.
    pub fn start_provider(&self, p: &str, endpoints: &[&str]) {
        const STATUSES: [&str; 7] = ["200", "202", "400", "401", "403", "413", "503"];
        const REFRESH: [&str; 5] = ["ok", "invalid_grant", "client_rejected", "unavailable", "rejected"];
        for s in STATUSES {
            self.webhooks.with_label_values(&[p, s]);
        }
        for o in NOTIFICATION_OUTCOMES {
            self.notifications.with_label_values(&[p, o]);
        }
        for kind in ["full", "incremental"] {
            for o in ["ok", "failed", "restarted", "coalesced"] {
                self.syncs.with_label_values(&[p, kind, o]);
            }
            self.sync_seconds.with_label_values(&[p, kind]);
        }
        self.propagation_seconds.with_label_values(&[p]);
        for o in REFRESH {
            self.refreshes.with_label_values(&[p, o]);
        }
        for e in endpoints {
            self.retries.with_label_values(&[e]);
            self.requests.with_label_values(&[e, "error"]); // no answer; other statuses as they come
        }
    }

    /// The text exposition of every family.
    pub fn render(&self) -> String {
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_default()
    }

    /// Counts a read that answered: calendars by source and by uncached reason, shadow comparisons.
    pub fn count_read(&self, read: &ReadCounts<'_>) {
        Metrics::inc(&self.reads, &["ok"]);
        self.served.with_label_values(&["legacy"]).inc_by(read.legacy);
        self.served.with_label_values(&["sql"]).inc_by(read.sql);
        for reason in &read.uncached {
            Metrics::inc(&self.uncached, &[reason]);
        }
        if let Some(shadow) = &read.shadow {
            for (outcome, n) in [
                ("equal", shadow.compared - shadow.diverged),
                ("diverged", shadow.diverged),
                ("not_comparable", shadow.not_comparable),
            ] {
                self.shadow.with_label_values(&[outcome]).inc_by(n);
            }
            for kind in &shadow.kinds {
                Metrics::inc(&self.divergences, &[kind]);
            }
        }
    }

    /// Counts what a renewal pass did to calendars: one count per action of [`RENEWAL_ACTIONS`],
    /// in its order.
    pub fn count_renewal(&self, counts: [u64; RENEWAL_ACTIONS.len()]) {
        for (action, n) in RENEWAL_ACTIONS.into_iter().zip(counts) {
            self.renewals.with_label_values(&[action]).inc_by(n);
        }
    }

    /// Adds one to `family` under `labels`.
    pub fn inc(family: &IntCounterVec, labels: &[&str]) {
        family.with_label_values(labels).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prefixed_families_in_text_format() {
        let m = Metrics::default();
        Metrics::inc(&m.webhooks, &["google", "200"]);
        m.sync_seconds.with_label_values(&["google", "full"]).observe(0.2);
        let text = m.render();
        assert!(text.contains("# TYPE calsync_webhooks_total counter"), "{text}");
        assert!(
            text.contains("calsync_webhooks_total{provider=\"google\",status=\"200\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("calsync_sync_duration_seconds_bucket{kind=\"full\",provider=\"google\",le=\"0.25\"} 1"),
            "{text}"
        );
    }
}
