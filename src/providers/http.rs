//! One shared HTTP client for every provider call: a timeout on each request, and retries with
//! exponential backoff and jitter on 429, 5xx, timeouts and rate-limit 403s, honouring
//! `Retry-After` (seconds, possibly fractional, or an HTTP date). Other 4xx are never retried.

use std::time::Duration;

use reqwest::{Method, RequestBuilder, StatusCode};

use super::ProviderError;
use crate::config::{HttpConfig, Secret};

/// A finished response: its status and body.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Vec<u8>,
}

/// The provider HTTP client.
#[derive(Clone)]
pub struct Http {
    client: reqwest::Client,
    cfg: HttpConfig,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
}

/// `base` with `segments` appended as percent-encoded path segments.
pub fn api_url(base: &str, segments: &[&str]) -> Result<reqwest::Url, ProviderError> {
    let bad = || ProviderError::Config(format!("the provider URL {base:?} is not valid"));
    let mut url = reqwest::Url::parse(base).map_err(|_| bad())?;
    url.path_segments_mut()
        .map_err(|_| bad())?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

/// An OAuth client: id and secret, or what to say when they are not configured.
pub struct OAuthClient<'a> {
    pub id: Option<&'a str>,
    pub secret: Option<&'a Secret>,
    pub unconfigured: &'static str,
}

/// Decodes a successful reply's JSON body.
pub fn decode<T: serde::de::DeserializeOwned>(reply: &Reply) -> Result<T, ProviderError> {
    serde_json::from_slice(&without_lone_surrogates(&reply.body)).map_err(|e| decode_error(&e))
}

/// `body` with every `\uXXXX` escape of a lone UTF-16 surrogate replaced by `\ufffd`. Providers
/// serialize strings from UTF-16 platforms and can send half a pair (a title cut in the middle of
/// an emoji); serde_json refuses such a string, which would fail the whole page and with it the
/// calendar. Borrowed unchanged when there is none (the common case: one scan for `\u`).
pub fn without_lone_surrogates(body: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    fn surrogate(b: &[u8], i: usize) -> Option<u16> {
        if b.get(i) != Some(&b'\\') || b.get(i + 1) != Some(&b'u') {
            return None;
        }
        let hex = std::str::from_utf8(b.get(i + 2..i + 6)?).ok()?;
        u16::from_str_radix(hex, 16)
            .ok()
            .filter(|u| (0xD800..=0xDFFF).contains(u))
    }
    if !body.windows(2).any(|w| w == b"\\u") {
        return std::borrow::Cow::Borrowed(body);
    }
    let mut out: Option<Vec<u8>> = None;
    let mut i = 0;
    while i < body.len() {
        if body[i] != b'\\' {
            if let Some(o) = out.as_mut() {
                o.push(body[i]);
            }
            i += 1;
            continue;
        }
        let step = match surrogate(body, i) {
            // A high surrogate followed by a low one is a pair: keep both.
            Some(0xD800..=0xDBFF) if surrogate(body, i + 6).is_some_and(|lo| lo >= 0xDC00) => 12,
            Some(_) => {
                let o = out.get_or_insert_with(|| body[..i].to_vec());
                o.extend_from_slice(b"\\ufffd");
                i += 6;
                continue;
            }
            None => 2, // any other escape, `\\` included, is two bytes at least
        };
        let end = (i + step).min(body.len());
        if let Some(o) = out.as_mut() {
            o.extend_from_slice(&body[i..end]);
        }
        i = end;
    }
    out.map_or(std::borrow::Cow::Borrowed(body), std::borrow::Cow::Owned)
}

/// A JSON error as calsync reports it: its category and position only. serde's own message can
/// quote the offending value, which may be an event's title or description.
pub fn decode_error(e: &serde_json::Error) -> ProviderError {
    let what = match e.classify() {
        serde_json::error::Category::Io => "an I/O error",
        serde_json::error::Category::Syntax => "malformed JSON",
        serde_json::error::Category::Data => "JSON of an unexpected shape",
        serde_json::error::Category::Eof => "truncated JSON",
    };
    ProviderError::Decode(format!("{what} at line {} column {}", e.line(), e.column()))
}

/// The error for a failed reply: 401 and 404 have their own kinds, the rest carry status and reason.
pub fn classify(reply: &Reply, reason: Option<&str>) -> ProviderError {
    match reply.status {
        StatusCode::UNAUTHORIZED => ProviderError::Unauthorized,
        StatusCode::NOT_FOUND => ProviderError::NotFound,
        _ => rejected(reply, reason),
    }
}

/// A reply the provider refused, with its status and error reason.
pub fn rejected(reply: &Reply, reason: Option<&str>) -> ProviderError {
    ProviderError::Rejected {
        status: reply.status.as_u16(),
        reason: reason.unwrap_or("").to_string(),
    }
}

/// Whether a non-2xx answer is worth another attempt.
pub fn retryable(status: StatusCode, body: &[u8]) -> bool {
    // 501 says the server does not implement the request at all: asking again changes nothing.
    if status == StatusCode::TOO_MANY_REQUESTS || (status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED) {
        return true;
    }
    if status == StatusCode::FORBIDDEN {
        // Google signals quota with 403 + reason rateLimitExceeded / userRateLimitExceeded.
        let text = String::from_utf8_lossy(body);
        return text.contains("\"rateLimitExceeded\"") || text.contains("\"userRateLimitExceeded\"");
    }
    false
}

/// Parses `Retry-After`: delta-seconds (fractions allowed) or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<f64>() {
        // `try_from`: a huge value (`1e20`) would overflow a Duration; it is too long anyway.
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let wait = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// Backoff before attempt `attempt + 1`: `base * 2^attempt`, capped, with "equal jitter" (between half
/// and all of it).
pub fn backoff(cfg: &HttpConfig, attempt: u32) -> Duration {
    let exp = cfg.base_delay.saturating_mul(1u32 << attempt.min(16));
    let capped = exp.min(cfg.max_delay);
    capped.mul_f64(0.5 + fastrand::f64() * 0.5)
}

impl Http {
    /// Builds the shared client.
    pub fn new(cfg: HttpConfig, metrics: std::sync::Arc<crate::metrics::Metrics>) -> Result<Self, ProviderError> {
        let client = reqwest::Client::builder()
            .timeout(cfg.request_timeout)
            .connect_timeout(cfg.request_timeout.min(Duration::from_secs(10)))
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("calsync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                // reqwest's own message is only "builder error"; the cause (say, no CA certificates
                // on the system, as in an image without ca-certificates) is in its sources.
                let mut message = format!("could not build the HTTP client: {e}");
                let mut source = std::error::Error::source(&e);
                while let Some(cause) = source {
                    message.push_str(&format!(": {cause}"));
                    source = cause.source();
                }
                ProviderError::Config(message)
            })?;
        Ok(Http { client, cfg, metrics })
    }

    /// Where requests and token refreshes are counted.
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }

    /// A request builder on the shared client.
    pub fn request(&self, method: Method, url: &str) -> RequestBuilder {
        self.client.request(method, url)
    }

    /// POSTs an OAuth `refresh_token` grant to `token_url` (with `scope` when given); the reply is
    /// for the caller to interpret.
    pub async fn refresh_grant(
        &self,
        endpoint: &'static str,
        token_url: &str,
        client: &OAuthClient<'_>,
        refresh_token: &str,
        scope: Option<&str>,
    ) -> Result<Reply, ProviderError> {
        let (Some(id), Some(secret)) = (client.id, client.secret) else {
            return Err(ProviderError::Config(client.unconfigured.into()));
        };
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", id),
            ("client_secret", secret.expose()),
        ];
        if let Some(scope) = scope {
            form.push(("scope", scope));
        }
        self.send(endpoint, || self.request(Method::POST, token_url).form(&form))
            .await
    }

    /// Sends the request `build` makes, retrying as the module docs say. Returns the final reply,
    /// successful or not (non-retryable 4xx come back as replies for the caller to interpret), or
    /// `Unavailable` when retries ran out.
    /// `endpoint` names the call in metrics (`google.events.list`, ...).
    pub async fn send(
        &self,
        endpoint: &'static str,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Reply, ProviderError> {
        let mut attempt = 0;
        loop {
            let outcome = build().send().await;
            let status = match &outcome {
                Ok(resp) => resp.status().as_str().to_string(),
                Err(_) => "error".to_string(),
            };
            crate::metrics::Metrics::inc(&self.metrics.requests, &[endpoint, &status]);
            let (reason, wait_hint) = match outcome {
                Ok(resp) => {
                    let status = resp.status();
                    let hint = resp
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(parse_retry_after);
                    let body = resp.bytes().await.map(|b| b.to_vec());
                    match body {
                        Ok(body) if status.is_success() || !retryable(status, &body) => {
                            return Ok(Reply { status, body })
                        }
                        Ok(_) => (format!("HTTP {}", status.as_u16()), hint),
                        Err(e) => (describe(&e), None),
                    }
                }
                Err(e) => (describe(&e), None),
            };
            attempt += 1;
            if attempt >= self.cfg.max_attempts {
                return Err(ProviderError::Unavailable {
                    reason: format!("{reason} after {attempt} attempts"),
                });
            }
            let wait = match wait_hint {
                Some(w) if w > self.cfg.max_delay => {
                    return Err(ProviderError::Unavailable {
                        reason: format!("{reason}; Retry-After {:.1}s is too long", w.as_secs_f64()),
                    })
                }
                Some(w) => w,
                None => backoff(&self.cfg, attempt - 1),
            };
            tracing::debug!(attempt, ?wait, %reason, "retrying provider request");
            crate::metrics::Metrics::inc(&self.metrics.retries, &[endpoint]);
            tokio::time::sleep(wait).await;
        }
    }
}

/// A reqwest error without its URL (which can carry tokens in query strings).
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "request timed out".into()
    } else if e.is_connect() {
        "could not connect".into()
    } else if e.is_body() || e.is_decode() {
        "response body could not be read".into()
    } else {
        "request failed".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_errors_never_quote_the_answer() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Page {
            items: Vec<String>,
        }
        let reply = Reply {
            status: StatusCode::OK,
            body: br#"{"items": "Board meeting: layoffs"}"#.to_vec(),
        };
        let e = decode::<Page>(&reply).unwrap_err().to_string();
        assert!(!e.contains("layoffs"), "{e}");
        assert!(e.contains("line 1"), "{e}");
    }

    #[test]
    fn lone_surrogates_become_replacement_characters() {
        let fix = |s: &str| String::from_utf8(without_lone_surrogates(s.as_bytes()).into_owned()).unwrap();
        let parsed = |s: &str| serde_json::from_str::<String>(&fix(s)).unwrap();
        assert_eq!(parsed(r#""a\ud83d b""#), "a\u{fffd} b");
        assert_eq!(parsed(r#""\udc00""#), "\u{fffd}");
        assert_eq!(parsed(r#""pair \ud83d\ude00 ok""#), "pair \u{1f600} ok");
        assert_eq!(parsed(r#""\\ud800 is text""#), "\\ud800 is text");
        assert_eq!(parsed(r#""\ud800\ud800\udc00""#), "\u{fffd}\u{10000}");
        assert!(matches!(
            without_lone_surrogates(b"{\"a\":\"\\u0041\"}"),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn retry_after_seconds_fractions_and_dates() {
        assert_eq!(parse_retry_after("1.5"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_retry_after(" 2.128 "), Some(Duration::from_secs_f64(2.128)));
        assert_eq!(parse_retry_after("-1"), None);
        // Beyond what a Duration holds: no panic, and far too long to wait for.
        assert_eq!(parse_retry_after("1e20"), Some(Duration::MAX));
        assert_eq!(parse_retry_after("soon"), None);
        let past = parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT");
        assert_eq!(past, Some(Duration::ZERO));
    }

    #[test]
    fn what_is_retried() {
        assert!(retryable(StatusCode::TOO_MANY_REQUESTS, b""));
        assert!(retryable(StatusCode::SERVICE_UNAVAILABLE, b""));
        assert!(retryable(
            StatusCode::FORBIDDEN,
            br#"{"error":{"errors":[{"reason":"rateLimitExceeded"}]}}"#
        ));
        assert!(retryable(
            StatusCode::FORBIDDEN,
            br#"{"error":{"errors":[{"reason":"userRateLimitExceeded"}]}}"#
        ));
        assert!(!retryable(
            StatusCode::FORBIDDEN,
            br#"{"error":{"errors":[{"reason":"forbidden"}]}}"#
        ));
        assert!(!retryable(StatusCode::NOT_FOUND, b""));
        assert!(!retryable(StatusCode::GONE, b""));
        assert!(!retryable(StatusCode::BAD_REQUEST, b""));
        assert!(!retryable(StatusCode::NOT_IMPLEMENTED, b""));
    }

    #[test]
    fn backoff_doubles_with_jitter_and_cap() {
        let cfg = HttpConfig {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
            ..Default::default()
        };
        for attempt in 0..8 {
            let full = Duration::from_millis(100 * (1 << attempt)).min(Duration::from_millis(1000));
            let d = backoff(&cfg, attempt);
            assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?}");
        }
    }
}
