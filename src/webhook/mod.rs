//! Webhook requests from providers, one handler for all of them (SPEC §5). The provider reads and
//! verifies the request ([`Provider::read_webhook`]); the handler then looks its channels up,
//! checks each against the calendar it watches (its resource; the shared token never opens a
//! channel calsync opened), marks the calendars durably, acts (renewals, recreations) and syncs.
//! It never fails: bad input and outages become a status for the route to send.

use std::collections::HashMap;
use std::sync::Arc;

use crate::db::{self, calendars, calendars::ChannelRow};
use crate::error::{Error, Result};
pub use crate::model::{Request, Response};
use crate::providers::{Action, Inbound, Notice, Provider, Resource};
use crate::sync::gate::Ticket;
use crate::sync::{Engine, SyncReport};

/// Handles one webhook request to the route of `integration` end to end; never fails. With `wait`,
/// the syncs finish before it answers. Notifications are counted by outcome
/// (`calsync_webhook_notifications_total`), and the ones an operator should see are logged.
pub async fn handle(engine: &Arc<Engine>, integration: &str, req: &Request, wait: bool) -> Response {
    let provider = match engine.provider(integration) {
        Ok(p) => p,
        Err(e) => return Response::json(404, "rejected", Some(&e.to_string())),
    };
    let label = provider.label();
    let count = |outcome: &str, n: usize| {
        engine
            .metrics
            .notifications
            .with_label_values(&[label, outcome])
            .inc_by(n as u64)
    };
    let (notices, accepted, rejected) = match provider.read_webhook(req) {
        Inbound::Answer {
            outcome,
            items,
            response,
            reason,
        } => {
            count(outcome, items);
            log_refusal(label, outcome, response.status, reason);
            return response;
        }
        Inbound::Notices {
            notices,
            accepted,
            rejected,
        } => (notices, accepted, rejected),
    };
    if rejected > 0 {
        count("forged", rejected);
        tracing::warn!(
            provider = label,
            code = "WEBHOOK_FORGED",
            rejected,
            "notification items that failed verification ignored"
        );
    }
    let batch = provider.batches_notices();
    let mut tally = Tally {
        accepted,
        rejected,
        unknown: 0,
    };
    // Tickets first, before any database work, so a burst registers at once. A ticket's key holds
    // all a notice's checks depend on, so a lookup shared by a burst checked exactly that.
    let tickets: Vec<(Ticket, Notice)> = notices
        .into_iter()
        .map(|n| {
            let key = format!("{label}:{}:{:?}:{}", n.channel_id, n.resource, n.shared_secret);
            (engine.ticket(&key), n)
        })
        .collect();
    let found = match calendars_of(engine, provider, &tickets).await {
        Ok(found) => found,
        Err(e) => {
            count("unavailable", accepted);
            return unavailable(label, &e);
        }
    };
    let mut work = Vec::new();
    let mut first_refusal = None;
    for ((ticket, notice), found) in tickets.into_iter().zip(found) {
        match found {
            Found::Calendar(id) => work.push((ticket, id, notice.action)),
            Found::Unknown => {
                tracing::info!(
                    provider = label,
                    code = "WEBHOOK_UNKNOWN",
                    "notification for an unknown channel ignored"
                );
                tally.unknown += 1;
            }
            Found::Refused(outcome, response) => {
                count(outcome, 1);
                tally.rejected += 1;
                first_refusal.get_or_insert(response);
            }
        }
    }
    let refused = tally.rejected - rejected;
    let settled = tally.unknown + refused;
    // Durable before acknowledged (SPEC §6.10): if this process dies after answering, the marks make
    // any other process sync the calendars; if they cannot be written, the provider retries.
    let mut marked: Vec<&str> = work.iter().map(|(_, id, _)| id.as_str()).collect();
    marked.sort_unstable();
    marked.dedup();
    let marks = marked
        .into_iter()
        .map(|id| engine.marks.mark(&engine.front, id, engine.cfg.connect_timeout));
    if let Some(Err(e)) = futures_util::future::join_all(marks)
        .await
        .into_iter()
        .find(|r| r.is_err())
    {
        count("unavailable", accepted.saturating_sub(settled));
        count("unknown", tally.unknown);
        return unavailable(label, &e);
    }
    count("accepted", accepted.saturating_sub(settled));
    count("unknown", tally.unknown);
    if !batch {
        // One notice, answered with its own outcome.
        if let Some(response) = first_refusal {
            return response;
        }
        let Some((ticket, id, action)) = work.pop() else {
            return Response::json(200, "unknown_channel", None);
        };
        if wait {
            return act(engine, ticket, &id, action)
                .await
                .map_or_else(|| Response::json(200, "coalesced", None), |r| synced(label, r));
        }
        let engine2 = engine.clone();
        engine.in_background(async move {
            act(&engine2, ticket, &id, action).await;
        });
        return Response::json(200, "accepted", None);
    }
    let run = {
        let engine = engine.clone();
        async move {
            let jobs = work.into_iter().map(|(ticket, id, action)| {
                let engine = engine.clone();
                async move { act(&engine, ticket, &id, action).await }
            });
            futures_util::future::join_all(jobs).await;
        }
    };
    if wait {
        run.await;
    } else {
        engine.in_background(run);
    }
    tally.response()
}

/// What a notice's channel turned out to be.
enum Found {
    /// It watches this calendar (a `SelectedCalendar` id).
    Calendar(String),
    /// No calendar carries it, and the ledger does not know it.
    Unknown,
    /// It does not fit its channel: the outcome it is counted under and the answer.
    Refused(&'static str, Response),
}

/// The calendar of each notice's channel, in order. A request of one notice shares its lookup
/// with the other requests of its burst (the ticket keeps the answer); a batch looks all its
/// channels up in one statement.
async fn calendars_of(engine: &Engine, provider: &dyn Provider, notices: &[(Ticket, Notice)]) -> Result<Vec<Found>> {
    let integration = provider.integration();
    let lookup = |ids: Vec<String>| async move {
        let rows = calendars::by_channels(&engine.front, integration, &ids);
        db::within(engine.cfg.connect_timeout, "looking up the channel", rows).await
    };
    if let [(ticket, notice)] = notices {
        // Only a calendar is kept for the burst; unknown channels and refusals are looked up again.
        let shared = ticket
            .resolve(|| async {
                let rows = lookup(vec![notice.channel_id.clone()]).await.map_err(Err)?;
                match check(provider.label(), notice, rows.get(&notice.channel_id)) {
                    Found::Calendar(id) => Ok(id),
                    other => Err(Ok(other)),
                }
            })
            .await;
        return match shared {
            Ok(id) => Ok(vec![Found::Calendar(id)]),
            Err(Ok(found)) => Ok(vec![found]),
            Err(Err(e)) => Err(e),
        };
    }
    if notices.is_empty() {
        return Ok(Vec::new()); // an empty batch: no database work for an unauthenticated caller
    }
    let rows: HashMap<String, ChannelRow> = lookup(notices.iter().map(|(_, n)| n.channel_id.clone()).collect()).await?;
    Ok(notices
        .iter()
        .map(|(_, n)| check(provider.label(), n, rows.get(&n.channel_id)))
        .collect())
}

/// Whether a notice fits the channel row it names.
fn check(label: &'static str, notice: &Notice, row: Option<&ChannelRow>) -> Found {
    let Some(row) = row else {
        return Found::Unknown;
    };
    // calsync's own channels carry their own token; the shared secret (which the TypeScript
    // implementation's channels send in every header) does not open them.
    if notice.shared_secret && row.in_ledger {
        tracing::warn!(provider = label, code = "WEBHOOK_FORGED", calendar = %row.selected_calendar_id,
            "a notification for a channel calsync opened presented the shared token instead of the channel's own");
        return Found::Refused("forged", Response::json(403, "rejected", Some("invalid channel token")));
    }
    if let Resource::Named(named) = &notice.resource {
        // A channel still being opened has no resource on record yet; its own token (the shared
        // one was refused above for ledger channels) already proved it is calsync's.
        let unknown_yet = row.from_ledger && row.resource_id.is_none();
        if !unknown_yet && (row.resource_id.is_none() || row.resource_id != *named) {
            tracing::warn!(provider = label, code = "WEBHOOK_MISMATCH", calendar = %row.selected_calendar_id,
                "notification with a resource id that does not match the channel");
            return Found::Refused(
                "mismatch",
                Response::json(403, "rejected", Some("resource id does not match the channel")),
            );
        }
    }
    Found::Calendar(row.selected_calendar_id.clone())
}

/// Carries out what a notice asked for: renewals and recreations always run; the sync is coalesced
/// per channel (`None`: it joined one already running).
async fn act(engine: &Engine, ticket: Ticket, id: &str, action: Action) -> Option<Result<SyncReport>> {
    // A recreation is not taken on trust: the renewal asks the provider, which renews a live channel
    // (a replayed or forged lifecycle notice then costs one request, never a new channel) and
    // recreates one the provider no longer has.
    if matches!(action, Action::Renew | Action::Recreate) {
        if let Err(e) = engine.renew_channel(id).await {
            tracing::warn!(calendar = %id, code = e.code(), error = %e, "could not renew or recreate a channel");
        }
    }
    // A failed sync is logged (once, with its code) where it is recorded.
    engine.coalesce(ticket, || engine.sync(id, false)).await
}

/// Counts of a batch, answered with 202.
struct Tally {
    accepted: usize,
    rejected: usize,
    unknown: usize,
}

impl Tally {
    fn response(&self) -> Response {
        let body = serde_json::json!({ "status": "accepted", "accepted": self.accepted, "rejected": self.rejected, "unknown": self.unknown });
        Response {
            status: 202,
            content_type: "application/json",
            body: body.to_string(),
        }
    }
}

/// Logs a request refused before any database work (handshakes and ignored states log nothing).
fn log_refusal(label: &'static str, outcome: &str, status: u16, reason: &str) {
    match outcome {
        "unconfigured" => tracing::error!(
            provider = label,
            code = "WEBHOOK_UNCONFIGURED",
            "a notification arrived but {reason}"
        ),
        "forged" => tracing::warn!(
            provider = label,
            code = "WEBHOOK_FORGED",
            status,
            "rejected a notification: {reason}"
        ),
        "malformed" => tracing::warn!(
            provider = label,
            code = "WEBHOOK_MALFORMED",
            status,
            "rejected a notification: {reason}"
        ),
        _ => {}
    }
}

fn synced(label: &'static str, result: Result<SyncReport>) -> Response {
    match result {
        Ok(_) => Response::json(200, "synced", None),
        Err(e @ (Error::DbUnavailable(_) | Error::Database(_))) => unavailable(label, &e),
        Err(e) => Response::json(200, "sync_failed", Some(e.code())),
    }
}

fn unavailable(label: &'static str, e: &Error) -> Response {
    tracing::error!(provider = label, code = e.code(), error = %e, "database error while handling a notification; answered 503 (the provider retries)");
    Response::json(503, "unavailable", Some(e.code()))
}
