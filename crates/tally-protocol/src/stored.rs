//! An event as a server keeps it.

use time::OffsetDateTime;

use crate::Event;

/// An event as stored: the wire event plus what the server knows of it.
///
/// It serializes as one flat JSON object, the line format of `tally export`
/// (and of `GET /api/v1/export`): the wire fields plus `client_timestamp`
/// and `received_at`.
///
/// ```
/// # let event: tally_protocol::Event = serde_json::from_str(r#"{
/// #     "id": "0195f3a4-6c1e-7cc2-9d61-3f1d6f0b1a01", "timestamp": "2026-11-20T10:00:00Z",
/// #     "app": "mycli", "app_version": "1.4.2", "install_id": "6f9619ff-8b86-4d01-b42d-00cf4fc964ff",
/// #     "command": "deploy create", "flags": [], "exit_code": 0, "duration_ms": 3,
/// #     "os": "linux", "arch": "x86_64"}"#)?;
/// use time::macros::datetime;
/// let stored = tally_protocol::StoredEvent {
///     event,
///     client_timestamp: datetime!(2026-11-20 09:00 UTC),
///     received_at: datetime!(2026-11-20 10:00:00.25 UTC),
/// };
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

impl StoredEvent {
    /// About how many bytes the event takes in memory: what a server counts
    /// against its memory bounds while it holds the event. Counted per
    /// string, so that many tiny strings (64 one-letter flags) cost what
    /// they take, not what their JSON took.
    ///
    /// ```
    /// # let event: tally_protocol::Event = serde_json::from_str(r#"{
    /// #     "id": "0195f3a4-6c1e-7cc2-9d61-3f1d6f0b1a01", "timestamp": "2026-11-20T10:00:00Z",
    /// #     "app": "mycli", "app_version": "1.4.2", "install_id": "6f9619ff-8b86-4d01-b42d-00cf4fc964ff",
    /// #     "command": "deploy create", "flags": [], "exit_code": 0, "duration_ms": 3,
    /// #     "os": "linux", "arch": "x86_64"}"#)?;
    /// let at = time::macros::datetime!(2026-11-20 10:00 UTC);
    /// let mut stored = tally_protocol::StoredEvent { event, client_timestamp: at, received_at: at };
    /// let plain = stored.memory_bytes();
    /// stored.event.flags = vec!["-v".into(); 64];
    /// assert!(stored.memory_bytes() >= plain + 64 * 32);
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn memory_bytes(&self) -> usize {
        let e = &self.event;
        // A String's own 24 bytes plus the allocator's rounding of its text.
        let text = |s: &str| 32 + s.len();
        let opt = |s: &Option<String>| s.as_deref().map_or(0, text);
        let error = e.error.as_ref().map_or(0, |err| {
            text(&err.kind) + text(&err.message) + opt(&err.location)
        });
        // A map entry: the key, the value and the tree's node share.
        let entries: usize = e
            .deps
            .iter()
            .map(|(k, v)| 48 + text(k) + text(v))
            .sum::<usize>()
            + e.properties
                .iter()
                .map(|(k, v)| {
                    48 + text(k)
                        + match v {
                            crate::PropertyValue::String(s) => text(s),
                            _ => 0,
                        }
                })
                .sum::<usize>();
        std::mem::size_of::<Self>()
            + text(&e.app)
            + text(&e.app_version)
            + text(&e.command)
            + opt(&e.name)
            + e.flags.iter().map(|f| text(f)).sum::<usize>()
            + text(&e.os)
            + text(&e.arch)
            + opt(&e.os_version)
            + opt(&e.ci)
            + opt(&e.agent)
            + error
            + entries
    }
}
