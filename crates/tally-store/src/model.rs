//! The values a store holds and hands back.

use tally_protocol::Event;
use time::OffsetDateTime;

/// An event as stored: the wire event plus what the server knows of it.
///
/// It serializes as one flat JSON object, the line format of `tally export`:
/// the wire fields plus `client_timestamp` and `received_at`.
///
/// ```
/// use time::macros::datetime;
/// let stored = tally_store::conformance::sample(1, "mycli", datetime!(2026-11-20 10:00 UTC));
/// let line = serde_json::to_value(&stored)?;
/// assert_eq!(line["command"], "deploy create");
/// assert_eq!(line["received_at"], "2026-11-20T10:00:00.25Z");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StoredEvent {
    /// The event; its timestamp is already on the server's clock.
    #[serde(flatten)]
    pub event: Event,
    /// The timestamp as the client sent it. It is the same on every retry of
    /// the event, which the corrected one is not, so dedupe looks it up.
    #[serde(with = "time::serde::rfc3339")]
    pub client_timestamp: OffsetDateTime,
    /// When the server received the event.
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
}

/// A registered app.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct App {
    /// The app's name, the `app` field of its events.
    pub name: String,
    /// The public ingest key its SDK sends.
    pub ingest_key: String,
}

impl App {
    /// A new app with a freshly made ingest key.
    ///
    /// ```
    /// let app = tally_store::App::new("mycli");
    /// assert_eq!(app.ingest_key.len(), 3 + 32);
    /// ```
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            ingest_key: format!("tk_{}", uuid::Uuid::new_v4().simple()),
        }
    }
}

/// Which events an export selects. The default selects every event.
///
/// ```
/// let all = tally_store::ExportFilter::default();
/// assert!(all.app.is_none());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportFilter {
    /// Only events of this app.
    pub app: Option<String>,
    /// Only events at or after this time.
    pub since: Option<OffsetDateTime>,
    /// Only events before this time.
    pub until: Option<OffsetDateTime>,
}
