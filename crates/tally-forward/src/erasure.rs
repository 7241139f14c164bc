//! Erasures passed on: when the server erases an install, each destination
//! that can delete it is told, after the install's events already in the
//! outbox (so the deletion comes after them), with retries like events.
//!
//! Each destination's folder holds the erasures it has still to pass on,
//! `erasures.ndjson`, one line each; a line goes once the destination took
//! it (or refused it for good), so an install's id is kept no longer than
//! it takes. Its dead letters of that install go at the same time.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::ForwardError;
use crate::config::{Destination, Kind};
use crate::encode::{Request, signed};
use crate::outbox::{Cursor, read_lines};
use crate::state::{DEAD_FILE, DeadLetter, REPLAY_FILE, write_atomically};

const ERASURES_FILE: &str = "erasures.ndjson";

/// Namespace of erasure message ids (a UUIDv5 namespace of Tally's own).
const ERASURE_IDS: Uuid = Uuid::from_u128(0x9d3c_41a8_27e6_4b0f_a512_6e8f_0b7c_d491);

/// One erasure to pass on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Erasure {
    /// The erased install.
    pub install_id: Uuid,
    /// Where the outbox ended when it was erased: passed on once the
    /// destination has read that far.
    pub after: Cursor,
    /// When it was erased.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// One destination's erasures to pass on, shared by the server (which
/// adds) and the destination's sender (which passes them on).
#[derive(Debug)]
pub(crate) struct Erasures {
    dir: PathBuf,
    /// Held while the file is read or written.
    file: Mutex<()>,
}

impl Erasures {
    pub(crate) fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
            file: Mutex::new(()),
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.join(ERASURES_FILE)
    }

    /// Adds `erasure`, synced.
    pub(crate) fn add(&self, erasure: &Erasure) -> Result<(), ForwardError> {
        let _held = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        let path = self.path();
        let at = |e: io::Error| ForwardError::io(&path, e);
        let mut line = serde_json::to_vec(erasure).expect("an erasure always serializes");
        line.push(b'\n');
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(at)?;
        file.set_len(crate::outbox::complete_length(&path).map_err(at)?)
            .map_err(at)?;
        file.write_all(&line).map_err(at)?;
        file.sync_data().map_err(at)
    }

    /// The first erasure to pass on once the destination has read up to
    /// `cursor`.
    pub(crate) fn due(&self, cursor: Cursor) -> Result<Option<Erasure>, ForwardError> {
        let _held = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        let mut first = None;
        read_lines(&self.path(), 0, u64::MAX, 1, |e: Erasure| first = Some(e))?;
        Ok(first.filter(|e| e.after <= cursor))
    }

    /// Forgets `erasure` as passed on, and the dead letters of its install.
    pub(crate) fn done(&self, erasure: &Erasure) -> Result<(), ForwardError> {
        let _held = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        rewrite_without(&self.path(), |e: &Erasure| e == erasure)?;
        // Dead letters, and those queued to be sent again: the destination
        // has been told to delete the install, and must not get it back.
        for file in [DEAD_FILE, REPLAY_FILE] {
            rewrite_without(&self.dir.join(file), |d: &DeadLetter| {
                d.event.event.install_id == erasure.install_id
            })?;
        }
        Ok(())
    }
}

/// Rewrites the NDJSON file at `path` without the lines `drop` picks.
fn rewrite_without<T: Serialize + serde::de::DeserializeOwned>(
    path: &Path,
    drop: impl Fn(&T) -> bool,
) -> Result<(), ForwardError> {
    if !path.exists() {
        return Ok(());
    }
    let mut kept = Vec::new();
    let mut dropped = false;
    read_lines(path, 0, u64::MAX, usize::MAX, |item: T| {
        if drop(&item) {
            dropped = true;
        } else {
            serde_json::to_writer(&mut kept, &item).expect("a line always serializes");
            kept.push(b'\n');
        }
    })?;
    if !dropped {
        return Ok(());
    }
    if kept.is_empty() {
        return fs::remove_file(path).map_err(|e| ForwardError::io(path, e));
    }
    write_atomically(path, &kept)
}

/// How a destination deletes an install, if it can.
#[derive(Debug, Clone)]
pub(crate) enum Deleter {
    /// A signed `erasure` message to the webhook.
    Webhook { url: String, key: Vec<u8> },
    /// PostHog's persons API (`bulk_delete`, events too), with a personal
    /// API key.
    PostHog {
        url: String,
        project_id: String,
        key: String,
    },
    /// A Segment workspace regulation (suppress and delete), with a Public
    /// API token.
    Segment { url: String, key: String },
}

/// Segment's Public API, where regulations are made.
const SEGMENT_API: &str = "https://api.segmentapis.com";

impl Deleter {
    /// How `destination` (whose webhook signing key is `signing`) deletes
    /// installs: `None` for PostHog and Segment without an erasure key; an
    /// error names a setting that is wrong.
    pub(crate) fn of(
        destination: &Destination,
        signing: Option<&[u8]>,
    ) -> Result<Option<Self>, String> {
        let name = &destination.name;
        let key = match (&destination.erasure_key, &destination.erasure_key_env) {
            (Some(key), _) => Some(key.clone()),
            (None, Some(var)) => Some(std::env::var(var).map_err(|_| {
                format!("{name}: the environment variable {var} (erasure_key_env) is not set")
            })?),
            (None, None) => None,
        };
        let url = |default: &str| {
            destination
                .erasure_url
                .as_deref()
                .unwrap_or(default)
                .trim_end_matches('/')
                .to_owned()
        };
        match (destination.kind, key) {
            (Kind::Webhook, _) => Ok(signing.map(|key| Self::Webhook {
                url: destination.url.clone(),
                key: key.to_vec(),
            })),
            (Kind::PostHog, Some(key)) => {
                let project_id = destination.project_id.clone().ok_or_else(|| {
                    format!("{name}: an erasure key needs project_id, the PostHog project's id")
                })?;
                Ok(Some(Self::PostHog {
                    url: url(&destination.url),
                    project_id,
                    key,
                }))
            }
            (Kind::Segment, Some(key)) => Ok(Some(Self::Segment {
                url: url(SEGMENT_API),
                key,
            })),
            (_, None) => Ok(None),
        }
    }

    /// The request that deletes `erasure` of `app`'s installs, at `now`.
    pub(crate) fn request(&self, app: &str, erasure: &Erasure, now: OffsetDateTime) -> Request {
        let id = erasure.install_id.to_string();
        let json = |url: String, key: &str, body: serde_json::Value| Request {
            url,
            headers: vec![
                ("Content-Type", "application/json".into()),
                ("Authorization", format!("Bearer {key}")),
            ],
            body: body.to_string().into_bytes(),
        };
        match self {
            Self::Webhook { url, key } => {
                let body = json!({
                    "type": "erasure",
                    "timestamp": crate::encode::rfc3339(now),
                    "data": {"app": app, "install_id": id},
                });
                // The same erasure has the same id on every attempt, and
                // the same install's erasure in another app another id.
                let name = [app.as_bytes(), b"\0", erasure.install_id.as_bytes()].concat();
                let message = Uuid::new_v5(&ERASURE_IDS, &name);
                let message = format!("msg_{}", message.simple());
                signed(url, key, &message, now, body.to_string().into_bytes())
            }
            Self::PostHog {
                url,
                project_id,
                key,
            } => json(
                format!("{url}/api/projects/{project_id}/persons/bulk_delete/"),
                key,
                json!({"distinct_ids": [id], "delete_events": true}),
            ),
            Self::Segment { url, key } => json(
                format!("{url}/regulations"),
                key,
                json!({
                    "regulationType": "SUPPRESS_WITH_DELETE",
                    "subjectType": "USER_ID",
                    "subjectIds": [id],
                }),
            ),
        }
    }
}
