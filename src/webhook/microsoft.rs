//! Microsoft Graph notifications (SPEC §5), once `providers::microsoft::notify` has read and checked
//! them: the validation handshake (the decoded token echoed as `text/plain`, nothing else), each
//! batch's subscriptions looked up, marked, and acted on (`reauthorizationRequired` → renew,
//! `subscriptionRemoved` → recreate, changes and `missed` → resync). The answer (202) does not wait
//! for the syncs unless asked to: Graph wants it within seconds.

use std::sync::Arc;

use super::{Request, Response};
use crate::db::{self, calendars};
use crate::providers::microsoft::notify::{triage, validation_token, Action, Tally, MAX_BODY};
use crate::sync::gate::Ticket;
use crate::sync::Engine;

/// Handles one Graph request end to end; never fails. With `wait`, the syncs finish before it
/// answers. Requests and notification items are counted by outcome
/// (`calsync_webhook_notifications_total`), and the ones an operator should see are logged.
pub async fn handle(engine: &Arc<Engine>, req: &Request, wait: bool) -> Response {
    let count = |outcome: &str, n: usize| {
        engine
            .metrics
            .notifications
            .with_label_values(&["microsoft", outcome])
            .inc_by(n as u64)
    };
    if let Some(token) = validation_token(&req.query) {
        count("handshake", 1);
        return Response {
            status: 200,
            content_type: "text/plain",
            body: token,
        };
    }
    let Some(secret) = engine.cfg.microsoft.webhook_token.as_ref() else {
        count("unconfigured", 1);
        tracing::error!(
            provider = "microsoft",
            code = "WEBHOOK_UNCONFIGURED",
            "a Graph notification arrived but MICROSOFT_WEBHOOK_TOKEN is not configured"
        );
        return Response::json(503, "unconfigured", Some("MICROSOFT_WEBHOOK_TOKEN is not configured"));
    };
    let malformed = |status, message| {
        count("malformed", 1);
        tracing::warn!(
            provider = "microsoft",
            code = "WEBHOOK_MALFORMED",
            status,
            "rejected a Graph request: {message}"
        );
        Response::json(status, "rejected", Some(message))
    };
    if req.body.len() > MAX_BODY {
        return malformed(413, "the body is larger than a Graph notification batch can be");
    }
    let items = match serde_json::from_str::<serde_json::Value>(&req.body) {
        Ok(v) => match v.get("value").and_then(|x| x.as_array()) {
            Some(items) => items.clone(),
            None => return malformed(400, "the body has no value array"),
        },
        Err(_) => return malformed(400, "the body is not JSON"),
    };
    let (todo, mut tally) = triage(&items, secret.expose());
    if tally.rejected > 0 {
        count("forged", tally.rejected);
        tracing::warn!(
            provider = "microsoft",
            code = "WEBHOOK_FORGED",
            rejected = tally.rejected,
            "Graph notification items with a wrong clientState ignored"
        );
    }
    if tally.accepted == 0 && tally.rejected > 0 {
        return Response::json(403, "rejected", Some("no item carried a valid clientState"));
    }
    if todo.is_empty() {
        // An empty batch: nothing to look up (and no database work for an unauthenticated caller).
        return accepted(&tally);
    }
    // Tickets first, before any database work, so a burst registers at once.
    let tickets: Vec<_> = todo
        .into_iter()
        .map(|(sub, action)| (engine.ticket(&format!("microsoft:{sub}")), sub, action))
        .collect();
    let subs: Vec<String> = tickets.iter().map(|(_, sub, _)| sub.clone()).collect();
    let lookup = calendars::by_channels(&engine.front, crate::providers::microsoft::INTEGRATION, &subs);
    let rows = match db::within(engine.cfg.connect_timeout, "looking up the subscriptions", lookup).await {
        Ok(rows) => rows,
        Err(e) => {
            count("unavailable", tally.accepted);
            tracing::error!(provider = "microsoft", code = e.code(), error = %e, "database error while handling a Graph notification; answered 503 (Graph retries)");
            return Response::json(503, "unavailable", Some(e.code()));
        }
    };
    let mut work = Vec::new();
    for (ticket, sub, action) in tickets {
        match rows.get(&sub) {
            Some(row) => work.push((ticket, row.selected_calendar_id.clone(), action)),
            None => {
                tracing::info!(
                    provider = "microsoft",
                    code = "WEBHOOK_UNKNOWN",
                    "notification for an unknown subscription ignored"
                );
                tally.unknown += 1;
            }
        }
    }
    // Durable before acknowledged (SPEC §6.10): one short write marks every calendar of the batch.
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
        count("unavailable", tally.accepted - tally.unknown);
        count("unknown", tally.unknown);
        tracing::error!(provider = "microsoft", code = e.code(), error = %e, "could not record a Graph notification; answered 503 (Graph retries)");
        return Response::json(503, "unavailable", Some(e.code()));
    }
    count("accepted", tally.accepted - tally.unknown);
    count("unknown", tally.unknown);
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
    accepted(&tally)
}

/// The 202 answer to a batch, with its counts.
fn accepted(tally: &Tally) -> Response {
    let body = serde_json::json!({ "status": "accepted", "accepted": tally.accepted, "rejected": tally.rejected, "unknown": tally.unknown });
    Response {
        status: 202,
        content_type: "application/json",
        body: body.to_string(),
    }
}

/// Carries out what one subscription's items asked for. Renewals and recreations always run; the
/// sync is coalesced per subscription.
async fn act(engine: &Engine, ticket: Ticket, id: &str, action: Action) {
    // `subscriptionRemoved` is not taken on trust: the renewal asks Graph, which renews a live
    // subscription (a replayed or forged lifecycle item then costs one PATCH, never a new
    // subscription) and recreates one Graph no longer has (404).
    let channel = match action {
        Action::Sync => Ok(()),
        Action::Renew | Action::Recreate => engine.renew_channel(id).await.map(drop),
    };
    if let Err(e) = channel {
        tracing::warn!(calendar = %id, integration = "office365_calendar", code = e.code(), error = %e, "could not renew or recreate a Graph subscription");
    }
    // A failed sync is logged (once, with its code) where it is recorded.
    engine.coalesce(ticket, || engine.sync(id, false)).await;
}
