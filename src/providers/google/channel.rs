//! Google push notifications as they arrive (SPEC §5): `X-Goog-*` headers and channel tokens,
//! checked without touching the database. Channel tokens: calsync gives each channel its own token,
//! the hex HMAC-SHA256 of the channel id keyed by `GOOGLE_WEBHOOK_TOKEN`, so one leaked token opens
//! one channel only. Channels created with the plain shared token (the TypeScript implementation's)
//! are recognised too.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::model::Request;

/// The token calsync gives channel `channel_id`.
pub fn channel_token(secret: &str, channel_id: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
    mac.update(channel_id.as_bytes());
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// Which token a notification presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token {
    /// The channel's own derived token: calsync opened the channel.
    Derived,
    /// The shared secret itself, as channels of the TypeScript implementation carry it (and so
    /// every notification header of theirs, proxy logs included). Accepted only for channels
    /// calsync did not open.
    Shared,
}

/// Which token `presented` is for channel `channel_id`, if either. Both comparisons always run,
/// in constant time.
pub fn verify_token(secret: &str, channel_id: &str, presented: &str) -> Option<Token> {
    let derived = channel_token(secret, channel_id);
    let a = bool::from(presented.as_bytes().ct_eq(derived.as_bytes()));
    let b = bool::from(presented.as_bytes().ct_eq(secret.as_bytes()));
    match (a, b) {
        (true, _) => Some(Token::Derived),
        (false, true) => Some(Token::Shared),
        (false, false) => None,
    }
}

/// What a verified notification asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// The handshake after a channel is created.
    Handshake,
    /// Something changed on the watched resource.
    Changed {
        channel_id: String,
        resource_id: Option<String>,
        token: Token,
    },
    /// A state calsync does not act on.
    Ignored,
}

/// Why a notification was refused before any database work: the HTTP status to answer, the
/// outcome it is counted under, and a message that names no secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub status: u16,
    /// `rejected` (missing headers, a wrong token) or `unconfigured` (no webhook secret).
    pub outcome: &'static str,
    pub message: &'static str,
}

const fn refused(status: u16, outcome: &'static str, message: &'static str) -> Refused {
    Refused {
        status,
        outcome,
        message,
    }
}

/// Checks headers and token without touching the database.
pub fn verify(req: &Request, secret: Option<&str>) -> Result<Notice, Refused> {
    let Some(channel_id) = req.header("x-goog-channel-id").filter(|c| !c.is_empty()) else {
        return Err(refused(400, "rejected", "missing X-Goog-Channel-ID"));
    };
    let Some(state) = req.header("x-goog-resource-state") else {
        return Err(refused(400, "rejected", "missing X-Goog-Resource-State"));
    };
    let Some(secret) = secret else {
        return Err(refused(503, "unconfigured", "GOOGLE_WEBHOOK_TOKEN is not configured"));
    };
    let Some(presented) = req.header("x-goog-channel-token") else {
        return Err(refused(401, "rejected", "missing channel token"));
    };
    let Some(token) = verify_token(secret, channel_id, presented) else {
        return Err(refused(403, "rejected", "invalid channel token"));
    };
    Ok(match state {
        "sync" => Notice::Handshake,
        "exists" | "not_exists" => Notice::Changed {
            channel_id: channel_id.to_string(),
            resource_id: req.header("x-goog-resource-id").map(str::to_string),
            token,
        },
        _ => Notice::Ignored,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(pairs: &[(&str, &str)]) -> Request {
        Request {
            headers: pairs
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn derived_and_shared_tokens_are_accepted() {
        let t = channel_token("s3cret", "chan-1");
        assert_eq!(t.len(), 64);
        assert_eq!(verify_token("s3cret", "chan-1", &t), Some(Token::Derived));
        assert_eq!(verify_token("s3cret", "chan-1", "s3cret"), Some(Token::Shared));
        assert_eq!(
            verify_token("s3cret", "chan-2", &t),
            None,
            "a token opens its own channel only"
        );
        assert_eq!(verify_token("s3cret", "chan-1", ""), None);
        assert_eq!(verify_token("s3cret", "chan-1", &t[..63]), None);
    }

    #[test]
    fn header_checks() {
        let tok = channel_token("k", "c");
        let ok = |state: &str| {
            req(&[
                ("X-Goog-Channel-ID", "c"),
                ("X-Goog-Channel-Token", &tok),
                ("X-Goog-Resource-State", state),
                ("X-Goog-Resource-ID", "r"),
            ])
        };
        assert_eq!(verify(&ok("sync"), Some("k")), Ok(Notice::Handshake));
        assert_eq!(
            verify(&ok("exists"), Some("k")),
            Ok(Notice::Changed {
                channel_id: "c".into(),
                resource_id: Some("r".into()),
                token: Token::Derived,
            })
        );
        assert_eq!(verify(&ok("whatever"), Some("k")), Ok(Notice::Ignored));
        assert_eq!(verify(&ok("exists"), Some("other")).unwrap_err().status, 403);
        assert_eq!(verify(&ok("exists"), None).unwrap_err().status, 503);
        assert_eq!(
            verify(&req(&[("X-Goog-Resource-State", "exists")]), Some("k"))
                .unwrap_err()
                .status,
            400
        );
        let no_token = req(&[("X-Goog-Channel-ID", "c"), ("X-Goog-Resource-State", "exists")]);
        assert_eq!(verify(&no_token, Some("k")).unwrap_err().status, 401);
    }
}
