//! Google push notifications (SPEC §5), once `providers::google::channel` has read and verified
//! them: `sync` handshakes answered without work, `exists`/`not_exists` checked against the channel's
//! calendar (its resource id; the shared token never opens a channel calsync opened), marked, and
//! turned into an incremental sync.

use std::sync::Arc;

use super::{Request, Response};
use crate::db::{self, calendars};
use crate::error::Error;
use crate::providers::google::channel::{verify, Notice, Token};
use crate::providers::google::INTEGRATION as GOOGLE;
use crate::sync::Engine;

/// Handles one Google notification end to end; never fails. Each one is counted by outcome
/// (`calsync_webhook_notifications_total`), and the ones an operator should see are logged.
pub async fn handle(engine: &Arc<Engine>, req: &Request, wait: bool) -> Response {
    let (outcome, resp) = answer(engine, req, wait).await;
    crate::metrics::Metrics::inc(&engine.metrics.notifications, &["google", outcome]);
    resp
}

async fn answer(engine: &Arc<Engine>, req: &Request, wait: bool) -> (&'static str, Response) {
    let secret = engine.cfg.google.webhook_token.as_ref().map(|s| s.expose());
    let (channel_id, resource_id, token) = match verify(req, secret) {
        Err(refused) => {
            let resp = Response::json(refused.status, refused.outcome, Some(refused.message));
            let outcome = match resp.status {
                503 => "unconfigured",
                400 => "malformed",
                _ => "forged",
            };
            match outcome {
                "unconfigured" => tracing::error!(
                    provider = "google",
                    code = "WEBHOOK_UNCONFIGURED",
                    "a Google notification arrived but GOOGLE_WEBHOOK_TOKEN is not configured"
                ),
                _ => tracing::warn!(
                    provider = "google",
                    code = if outcome == "forged" {
                        "WEBHOOK_FORGED"
                    } else {
                        "WEBHOOK_MALFORMED"
                    },
                    status = resp.status,
                    "rejected a Google notification"
                ),
            }
            return (outcome, resp);
        }
        Ok(Notice::Handshake) => return ("handshake", Response::json(200, "handshake", None)),
        Ok(Notice::Ignored) => return ("ignored", Response::json(200, "ignored", None)),
        Ok(Notice::Changed {
            channel_id,
            resource_id,
            token,
        }) => (channel_id, resource_id, token),
    };
    // The ticket comes first, before any database work, so a burst registers at once. Its key
    // holds the resource id and the token's kind too, so a lookup shared by a burst checked
    // exactly that.
    let ticket = engine.ticket(&format!(
        "google:{channel_id}:{}:{token:?}",
        resource_id.as_deref().unwrap_or_default()
    ));
    // The channel is checked before answering (a database outage gets a 503, which Google retries);
    // the notifications of a burst share one lookup.
    let id = match ticket
        .resolve(|| channel_calendar(engine, &channel_id, resource_id.as_deref(), token))
        .await
    {
        Ok(id) => id,
        Err((outcome, resp)) => return (outcome, resp),
    };
    // Durable before acknowledged (SPEC §6.10): if this process dies after answering, the mark
    // makes any other process sync the calendar; if it cannot be written, Google retries.
    if let Err(e) = engine.marks.mark(&engine.front, &id, engine.cfg.connect_timeout).await {
        return ("unavailable", unavailable(&e));
    }
    if wait {
        let outcome = engine.coalesce(ticket, || engine.sync(&id, false)).await;
        return (
            "accepted",
            outcome.map_or_else(|| Response::json(200, "coalesced", None), synced),
        );
    }
    let task = {
        let engine = engine.clone();
        async move {
            // A failed sync is logged (once, with its code) where it is recorded.
            engine.coalesce(ticket, || engine.sync(&id, false)).await;
        }
    };
    engine.in_background(task);
    ("accepted", Response::json(200, "accepted", None))
}

/// The SelectedCalendar row watched by a channel, once the notification's resource id and token
/// fit it; otherwise the outcome and the response to send.
async fn channel_calendar(
    engine: &Engine,
    channel_id: &str,
    resource_id: Option<&str>,
    token: Token,
) -> Result<String, (&'static str, Response)> {
    let lookup = calendars::by_channel(&engine.front, GOOGLE, channel_id);
    let row = match db::within(engine.cfg.connect_timeout, "looking up the channel", lookup).await {
        Ok(Some(row)) => row,
        Ok(None) => {
            tracing::info!(
                provider = "google",
                code = "WEBHOOK_UNKNOWN",
                "notification for an unknown channel ignored"
            );
            return Err(("unknown", Response::json(200, "unknown_channel", None)));
        }
        Err(e) => return Err(("unavailable", unavailable(&e))),
    };
    // calsync's own channels carry their derived token; the shared secret (which the TypeScript
    // implementation's channels send in every header) does not open them.
    if token == Token::Shared && row.in_ledger {
        tracing::warn!(provider = "google", code = "WEBHOOK_FORGED", calendar = %row.selected_calendar_id,
            "a notification for a channel calsync opened presented the shared token instead of the channel's own");
        return Err(("forged", Response::json(403, "rejected", Some("invalid channel token"))));
    }
    // A channel still being opened has no resource id on record yet; its derived token (the
    // shared one was refused above for ledger channels) already proved it is calsync's.
    let unknown_yet = row.from_ledger && row.resource_id.is_none();
    if !unknown_yet && (row.resource_id.is_none() || row.resource_id.as_deref() != resource_id) {
        tracing::warn!(provider = "google", code = "WEBHOOK_MISMATCH", calendar = %row.selected_calendar_id,
            "notification with a resource id that does not match the channel");
        return Err((
            "mismatch",
            Response::json(403, "rejected", Some("resource id does not match the channel")),
        ));
    }
    Ok(row.selected_calendar_id)
}

fn synced(result: crate::error::Result<crate::sync::SyncReport>) -> Response {
    match result {
        Ok(_) => Response::json(200, "synced", None),
        Err(e @ (Error::DbUnavailable(_) | Error::Database(_))) => unavailable(&e),
        Err(e) => Response::json(200, "sync_failed", Some(e.code())),
    }
}

fn unavailable(e: &Error) -> Response {
    tracing::error!(provider = "google", code = e.code(), error = %e, "database error while handling a Google notification; answered 503 (Google retries)");
    Response::json(503, "unavailable", Some(e.code()))
}
