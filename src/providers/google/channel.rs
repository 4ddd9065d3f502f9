//! Google channel tokens: calsync gives each channel its own token, the hex HMAC-SHA256 of the
//! channel id keyed by `GOOGLE_WEBHOOK_TOKEN`, so one leaked token opens one channel only. Channels
//! created with the plain shared token (the TypeScript implementation's) are recognised too.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

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
