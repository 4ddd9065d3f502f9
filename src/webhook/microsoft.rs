//! Microsoft Graph notifications (SPEC §5): the validation handshake (the decoded token echoed as
//! `text/plain`, nothing else), change notifications checked item by item (`clientState` compared in
//! constant time; a wrong one is ignored and counted, the rest of the batch processed), lifecycle
//! events (`reauthorizationRequired` → renew, `subscriptionRemoved` → recreate, `missed` → resync).
//! The answer (202) does not wait for the syncs unless asked to: Graph wants it within seconds.

use std::collections::BTreeMap;
use std::sync::Arc;

use subtle::ConstantTimeEq;

use super::{Request, Response};
use crate::db::{self, calendars};
use crate::providers::microsoft::wire::Notification;
use crate::sync::gate::Ticket;
use crate::sync::Engine;

/// The validation token of a handshake request, percent-decoded, if the query carries one.
pub fn validation_token(query: &str) -> Option<String> {
    let url = reqwest::Url::parse(&format!("http://graph.invalid/?{query}")).ok()?;
    let token = url
        .query_pairs()
        .find(|(k, _)| k == "validationToken")
        .map(|(_, v)| v.into_owned());
    token
}

/// What one calendar needs after a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    /// Changes (or missed ones): sync incrementally.
    Sync,
    /// Renew the subscription, then sync.
    Renew,
    /// The subscription is gone: create a new one, then sync.
    Recreate,
}

/// Counts of one batch, returned in the response body.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    pub accepted: usize,
    pub rejected: usize,
    pub unknown: usize,
}

/// Checks each item's clientState and sorts what to do per subscription id, without touching the
/// database. Unparseable items count as rejected.
pub fn triage(items: &[serde_json::Value], secret: &str) -> (BTreeMap<String, Action>, Tally) {
    let mut todo: BTreeMap<String, Action> = BTreeMap::new();
    let mut tally = Tally::default();
    for raw in items {
        let Ok(n) = serde_json::from_value::<Notification>(raw.clone()) else {
            tally.rejected += 1;
            continue;
        };
        let state = n.client_state.as_deref().unwrap_or("");
        let valid: bool = state.as_bytes().ct_eq(secret.as_bytes()).into();
        let Some(sub) = n.subscription_id.filter(|_| valid) else {
            tally.rejected += 1;
            continue;
        };
        let action = match n.lifecycle_event.as_deref() {
            Some("reauthorizationRequired") => Action::Renew,
            Some("subscriptionRemoved") => Action::Recreate,
            _ => Action::Sync, // a change, or `missed`
        };
        tally.accepted += 1;
        let slot = todo.entry(sub).or_insert(action);
        *slot = (*slot).max(action);
    }
    (todo, tally)
}

/// The largest notification body calsync parses. Graph batches are far smaller (a few hundred bytes
/// an item); anything bigger is refused before any parsing, unauthenticated as it is.
pub const MAX_BODY: usize = 1 << 20;

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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn validation_tokens_are_decoded() {
        assert_eq!(
            validation_token("validationToken=a%20b%3Cscript%3E").as_deref(),
            Some("a b<script>")
        );
        assert_eq!(validation_token("validationToken=x+y").as_deref(), Some("x y"));
        assert_eq!(validation_token("other=1"), None);
        assert_eq!(validation_token(""), None);
    }

    #[test]
    fn items_are_checked_one_by_one() {
        let items = vec![
            json!({"subscriptionId": "s1", "clientState": "k", "changeType": "updated"}),
            json!({"subscriptionId": "s1", "clientState": "k", "changeType": "created"}),
            json!({"subscriptionId": "s2", "clientState": "forged", "changeType": "updated"}),
            json!({"subscriptionId": "s3", "clientState": "k", "lifecycleEvent": "subscriptionRemoved"}),
            json!({"subscriptionId": "s4", "clientState": "k", "lifecycleEvent": "reauthorizationRequired"}),
            json!({"subscriptionId": "s5", "clientState": "k", "lifecycleEvent": "missed"}),
            json!({"subscriptionId": "s6"}),
            json!("garbage"),
        ];
        let (todo, tally) = triage(&items, "k");
        assert_eq!(
            tally,
            Tally {
                accepted: 5,
                rejected: 3,
                unknown: 0
            }
        );
        let got: Vec<(&str, Action)> = todo.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(
            got,
            vec![
                ("s1", Action::Sync),
                ("s3", Action::Recreate),
                ("s4", Action::Renew),
                ("s5", Action::Sync)
            ]
        );
    }
}
