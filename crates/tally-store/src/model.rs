//! The values a store holds and hands back.

use time::OffsetDateTime;

/// A registered app.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct App {
    /// The app's name, the `app` field of its events.
    pub name: String,
    /// The public ingest key its SDK sends.
    pub ingest_key: String,
    /// The app's secret: foreign user ids that could name a person (an
    /// e-mail sent as PostHog's `distinct_id`) are stored only as a hash
    /// keyed with it. Never sent to clients.
    #[serde(default, skip_serializing)]
    pub salt: String,
}

impl App {
    /// A new app with a freshly made ingest key and salt.
    ///
    /// ```
    /// let app = tally_store::App::new("mycli");
    /// assert_eq!(app.ingest_key.len(), 3 + 32);
    /// assert_ne!(app.salt, tally_store::App::new("mycli").salt);
    /// ```
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            ingest_key: format!("tk_{}", uuid::Uuid::new_v4().simple()),
            salt: new_salt(),
        }
    }
}

/// 244 random bits (two UUIDv4s, from the system's random source), as hex.
pub(crate) fn new_salt() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
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
