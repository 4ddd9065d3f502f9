//! Microsoft Graph notifications as they arrive (SPEC §5), read without touching the database: the
//! validation handshake's token, and a batch's items checked one by one (`clientState` compared in
//! constant time; a wrong one is ignored and counted, the rest of the batch processed) and sorted
//! into what each subscription needs.

use std::collections::BTreeMap;

use subtle::ConstantTimeEq;

use super::wire::Notification;
use crate::providers::Action;

/// The validation token of a handshake request, percent-decoded, if the query carries one.
pub fn validation_token(query: &str) -> Option<String> {
    let url = reqwest::Url::parse(&format!("http://graph.invalid/?{query}")).ok()?;
    let token = url
        .query_pairs()
        .find(|(k, _)| k == "validationToken")
        .map(|(_, v)| v.into_owned());
    token
}

/// How many items of a batch passed and failed the clientState check.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    pub accepted: usize,
    pub rejected: usize,
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
                rejected: 3
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
