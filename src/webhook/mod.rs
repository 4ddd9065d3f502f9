//! Webhook requests from providers: parsing and verification (constant time), one handler per
//! provider. Handlers never fail on bad input: they answer with a status for the route to send.

pub mod google;
pub mod microsoft;

use std::collections::HashMap;

/// The parts of an HTTP request a route hands over.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Header names lower-cased.
    pub headers: HashMap<String, String>,
    /// The raw query string (without `?`).
    pub query: String,
    /// The raw body.
    pub body: String,
}

impl Request {
    /// Builds a request from loosely typed JS values: a headers object whose values are strings or
    /// arrays of strings (the first is used), an optional query string and body.
    pub fn from_json(v: &serde_json::Value) -> Self {
        let mut headers = HashMap::new();
        if let Some(obj) = v.get("headers").and_then(|h| h.as_object()) {
            for (k, val) in obj {
                let text = match val {
                    serde_json::Value::String(s) => Some(s.clone()),
                    serde_json::Value::Array(a) => a.first().and_then(|x| x.as_str()).map(str::to_string),
                    serde_json::Value::Number(n) => Some(n.to_string()),
                    _ => None,
                };
                if let Some(t) = text {
                    headers.insert(k.to_ascii_lowercase(), t);
                }
            }
        }
        let text = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or_default().to_string();
        Request {
            headers,
            query: text("query").trim_start_matches('?').to_string(),
            body: text("body"),
        }
    }

    /// A header by (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }
}

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
