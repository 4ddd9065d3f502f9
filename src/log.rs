//! Logs for the host (SPEC §13): calsync's `tracing` events, filtered by level, rate-limited and
//! handed to a [`Sink`] — the host's logger (through the binding) or, by default, one JSON line
//! each on stderr.
//!
//! Each connected instance has its own [`Logger`]; the instance runs its work under it (see
//! `tracing::instrument::WithSubscriber`), and background tasks inherit it when they are spawned.
//! Events carry structured fields (code, calendar, integration, duration...). Call sites never put
//! tokens, secrets or event contents in them; error texts are calsync's own (provider errors name
//! the request and status, never the answer's body).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};

use crate::error::{Error, Result};

/// How severe an event is, in increasing order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    /// The name the host's logger has a method for.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }

    fn of(level: &tracing::Level) -> Level {
        match *level {
            tracing::Level::ERROR => Level::Error,
            tracing::Level::WARN => Level::Warn,
            tracing::Level::INFO => Level::Info,
            _ => Level::Debug, // DEBUG and TRACE
        }
    }
}

/// The least severe level logged, or `None` for nothing at all.
pub type Threshold = Option<Level>;

/// Parses a level name (`debug`, `info`, `warn`, `error`, `off`), as `CALSYNC_LOG` and the
/// `logLevel` option take it.
pub fn parse_threshold(s: &str) -> Result<Threshold> {
    Ok(Some(match s.trim().to_ascii_lowercase().as_str() {
        "debug" | "trace" => Level::Debug,
        "info" => Level::Info,
        "warn" | "warning" => Level::Warn,
        "error" => Level::Error,
        "off" | "none" | "silent" => return Ok(None),
        other => {
            return Err(Error::invalid(format!(
                "log level '{other}' is not one of debug, info, warn, error, off"
            )))
        }
    }))
}

/// Where log entries go.
pub trait Sink: Send + Sync {
    /// One entry: its level, message and structured fields.
    fn write(&self, level: Level, message: &str, fields: Map<String, Value>);
}

/// The default sink: one JSON object a line on stderr (`time`, `level`, `msg`, then the fields).
pub struct StderrJson;

impl Sink for StderrJson {
    fn write(&self, level: Level, message: &str, fields: Map<String, Value>) {
        let mut line = Map::new();
        line.insert(
            "time".into(),
            Value::String(crate::time::now_db().and_utc().to_rfc3339()),
        );
        line.insert("level".into(), Value::String(level.as_str().into()));
        line.insert("name".into(), Value::String("calsync".into()));
        line.insert("msg".into(), Value::String(message.into()));
        line.extend(fields);
        eprintln!("{}", Value::Object(line));
    }
}

/// How often one kind of entry (same level, message, code and calendar) is written at most; the
/// rest are counted and the next one written says how many were left out (`suppressed`).
pub const REPEAT_WINDOW: Duration = Duration::from_secs(60);

/// A `tracing` subscriber that filters, rate-limits and forwards events to a [`Sink`].
pub struct Logger {
    threshold: Threshold,
    sink: Arc<dyn Sink>,
    recent: Mutex<HashMap<String, Recent>>,
}

struct Recent {
    since: Instant,
    suppressed: u64,
}

impl fmt::Debug for Logger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Logger").field("threshold", &self.threshold).finish()
    }
}

impl Logger {
    /// A logger writing entries at `threshold` and above to `sink`.
    pub fn new(threshold: Threshold, sink: Arc<dyn Sink>) -> Self {
        Logger {
            threshold,
            sink,
            recent: Mutex::new(HashMap::new()),
        }
    }

    /// As a `tracing` dispatcher, to run work under.
    pub fn dispatch(self) -> tracing::Dispatch {
        tracing::Dispatch::new(self)
    }

    /// Whether an entry with this key may be written now; `Some(n)`: yes, after `n` left out.
    fn admit(&self, key: String, now: Instant) -> Option<u64> {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() > 10_000 {
            recent.retain(|_, r| now.duration_since(r.since) < REPEAT_WINDOW);
        }
        match recent.get_mut(&key) {
            Some(r) if now.duration_since(r.since) < REPEAT_WINDOW => {
                r.suppressed += 1;
                None
            }
            Some(r) => {
                let left_out = r.suppressed;
                *r = Recent {
                    since: now,
                    suppressed: 0,
                };
                Some(left_out)
            }
            None => {
                recent.insert(
                    key,
                    Recent {
                        since: now,
                        suppressed: 0,
                    },
                );
                Some(0)
            }
        }
    }
}

/// Collects an event's fields as JSON values; `message` apart.
#[derive(Default)]
struct Fields {
    message: String,
    map: Map<String, Value>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = text;
        } else {
            self.map.insert(field.name().into(), Value::String(text));
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.into();
        } else {
            self.map.insert(field.name().into(), Value::String(value.into()));
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.map.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.map.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.map.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.map.insert(field.name().into(), value.into());
    }
}

impl Subscriber for Logger {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        // Asked each time: several instances with different levels may share the callsites.
        Interest::sometimes()
    }

    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        meta.is_event() && self.threshold.is_some_and(|t| Level::of(meta.level()) >= t)
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1) // calsync opens no spans; a host's instrumentation gets an inert one
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let level = Level::of(event.metadata().level());
        let mut f = Fields::default();
        event.record(&mut f);
        let part = |k: &str| f.map.get(k).map(|v| v.to_string()).unwrap_or_default();
        let key = format!(
            "{}|{}|{}|{}|{}",
            level.as_str(),
            f.message,
            part("code"),
            part("calendar"),
            part("integration")
        );
        let Some(left_out) = self.admit(key, Instant::now()) else {
            return;
        };
        if left_out > 0 {
            f.map.insert("suppressed".into(), left_out.into());
        }
        self.sink.write(level, &f.message, f.map);
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::instrument::WithSubscriber;

    type Entry = (Level, String, Map<String, Value>);

    #[derive(Default)]
    struct Kept(Mutex<Vec<Entry>>);

    impl Sink for Kept {
        fn write(&self, level: Level, message: &str, fields: Map<String, Value>) {
            self.0.lock().unwrap().push((level, message.into(), fields));
        }
    }

    #[test]
    fn levels_parse() {
        assert_eq!(parse_threshold("WARN").unwrap(), Some(Level::Warn));
        assert_eq!(parse_threshold("off").unwrap(), None);
        let e = parse_threshold("loud").unwrap_err();
        assert_eq!(e.code(), "INVALID_ARGUMENT");
    }

    #[tokio::test]
    async fn filtered_structured_and_rate_limited() {
        let kept = Arc::new(Kept::default());
        let logger = Logger::new(Some(Level::Info), kept.clone()).dispatch();
        async {
            tracing::debug!("below the threshold");
            for _ in 0..5 {
                tracing::warn!(calendar = "c1", code = "PROVIDER_AUTH", ms = 12u64, "sync failed");
            }
            tracing::warn!(calendar = "c2", code = "PROVIDER_AUTH", "sync failed");
            tracing::info!(ok = true, "a note");
        }
        .with_subscriber(logger.clone())
        .await;
        tracing::error!("outside the instance: not ours");
        let got = kept.0.lock().unwrap();
        let summary: Vec<(&str, &str, Option<&Value>)> = got
            .iter()
            .map(|(l, m, f)| (l.as_str(), m.as_str(), f.get("calendar")))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("warn", "sync failed", Some(&Value::from("c1"))),
                ("warn", "sync failed", Some(&Value::from("c2"))),
                ("info", "a note", None),
            ]
        );
        assert_eq!(got[0].2.get("code"), Some(&Value::from("PROVIDER_AUTH")));
        assert_eq!(got[0].2.get("ms"), Some(&Value::from(12u64)));
    }

    #[test]
    fn a_repeat_after_the_window_says_how_many_were_left_out() {
        let logger = Logger::new(Some(Level::Warn), Arc::new(Kept::default()));
        let t0 = Instant::now();
        assert_eq!(logger.admit("k".into(), t0), Some(0));
        assert_eq!(logger.admit("k".into(), t0 + Duration::from_secs(1)), None);
        assert_eq!(logger.admit("k".into(), t0 + Duration::from_secs(2)), None);
        assert_eq!(
            logger.admit("k".into(), t0 + REPEAT_WINDOW + Duration::from_secs(1)),
            Some(2)
        );
    }
}
