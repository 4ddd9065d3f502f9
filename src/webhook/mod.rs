//! Webhook requests from providers: parsing and verification (constant time), one handler per
//! provider. Handlers never fail on bad input: they answer with a status for the route to send.

pub mod google;
pub mod microsoft;

pub use crate::model::Request;

/// What the route sends back verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Response {
    /// The headers to send: the content type, and `X-Content-Type-Options: nosniff` so that no
    /// browser ever reads an echoed body (Graph's validation token) as anything but its type.
    pub fn headers(&self) -> [(&'static str, &'static str); 2] {
        [
            ("Content-Type", self.content_type),
            ("X-Content-Type-Options", "nosniff"),
        ]
    }

    /// A JSON response `{"status": outcome}` (plus a message for errors).
    pub fn json(status: u16, outcome: &str, message: Option<&str>) -> Self {
        let mut body = serde_json::json!({ "status": outcome });
        if let Some(m) = message {
            body["message"] = serde_json::json!(m);
        }
        Response {
            status,
            content_type: "application/json",
            body: body.to_string(),
        }
    }
}
