//! What a destination has done, on disk: its place in the outbox, its
//! counts, its dead letters; and what `tally forward status|dead|replay`
//! read and do with them, while the server runs or not.
//!
//! A destination's folder is `DATA/forward/APP/DESTINATION/`: `state.json`
//! (written whole and renamed into place), `dead.ndjson` (events a
//! destination refused, with its answer) and `replay.ndjson` (dead letters
//! to send again, which the sender takes before the outbox).

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tally_protocol::StoredEvent;
use time::OffsetDateTime;

use crate::ForwardError;
use crate::outbox::{Cursor, read_lines};

pub(crate) const STATE_FILE: &str = "state.json";
pub(crate) const DEAD_FILE: &str = "dead.ndjson";
pub(crate) const REPLAY_FILE: &str = "replay.ndjson";
/// The folder of the app's outbox, beside its destinations' folders.
pub(crate) const OUTBOX_DIR: &str = "outbox";

/// A destination's progress, saved after every batch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct State {
    /// How far into the outbox it has delivered (or dead-lettered).
    pub cursor: Cursor,
    /// How far into `replay.ndjson` it has delivered.
    pub replay_offset: u64,
    /// Events delivered.
    pub sent: u64,
    /// Events the destination refused, now dead letters.
    pub dead: u64,
    /// Attempts that failed and were tried again.
    pub retries: u64,
    /// The last failure: the destination's status and answer, or the
    /// network's error.
    pub last_error: Option<String>,
    /// When a batch was last delivered.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_delivered: Option<OffsetDateTime>,
}

impl State {
    /// The state saved in `dir`, or a new one.
    pub(crate) fn load(dir: &Path) -> Result<Self, ForwardError> {
        let path = dir.join(STATE_FILE);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|_| ForwardError::Corrupt(path)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(ForwardError::io(&path, e)),
        }
    }

    pub(crate) fn save(&self, dir: &Path) -> Result<(), ForwardError> {
        let json = serde_json::to_vec_pretty(self).expect("a state always serializes");
        write_atomically(&dir.join(STATE_FILE), &json)
    }
}

/// Writes `bytes` to `path` so that a crash leaves the old content or the
/// new, never a mix: a temporary file, synced, renamed over it.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ForwardError> {
    let tmp = path.with_extension("tmp");
    let at = |e: io::Error| ForwardError::io(path, e);
    let mut file = File::create(&tmp).map_err(at)?;
    file.write_all(bytes).map_err(at)?;
    file.sync_data().map_err(at)?;
    fs::rename(&tmp, path).map_err(at)?;
    if let Some(dir) = path.parent()
        && let Ok(dir) = File::open(dir)
    {
        // The rename is durable once the folder is; not every platform
        // can sync a folder, and the state is then as durable as it gets.
        let _ = dir.sync_all();
    }
    Ok(())
}

/// One refused event, as `dead.ndjson` holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// When the destination refused it.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The destination's HTTP status.
    pub status: u16,
    /// The start of the destination's answer.
    pub reason: String,
    /// The event.
    pub event: StoredEvent,
}

/// Appends `letters` to the dead letters in `dir`, synced.
pub(crate) fn bury(dir: &Path, letters: &[DeadLetter]) -> Result<(), ForwardError> {
    let path = dir.join(DEAD_FILE);
    let mut lines = Vec::new();
    for letter in letters {
        serde_json::to_writer(&mut lines, letter).expect("a dead letter always serializes");
        lines.push(b'\n');
    }
    let at = |e: io::Error| ForwardError::io(&path, e);
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(at)?;
    // A line a crash cut short would spoil the file for every reader.
    file.set_len(crate::outbox::complete_length(&path).map_err(at)?)
        .map_err(at)?;
    file.write_all(&lines).map_err(at)?;
    file.sync_data().map_err(at)
}

/// Reads up to `max` replayed events of `dir` from `offset` on; the
/// offset after them.
pub(crate) fn read_replay(
    dir: &Path,
    offset: u64,
    max: usize,
) -> Result<(Vec<StoredEvent>, u64), ForwardError> {
    let mut events = Vec::new();
    let after = read_lines(
        &dir.join(REPLAY_FILE),
        offset,
        u64::MAX,
        max,
        |letter: DeadLetter| events.push(letter.event),
    )?;
    Ok((events, after))
}

/// Removes a replay file read to its end.
pub(crate) fn finish_replay(dir: &Path) -> Result<(), ForwardError> {
    let path = dir.join(REPLAY_FILE);
    match fs::remove_file(&path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(ForwardError::io(&path, e)),
        _ => Ok(()),
    }
}

/// What `tally forward status` shows of one destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    /// The app whose events it gets.
    pub app: String,
    /// The destination's name.
    pub destination: String,
    /// Events stored and not yet delivered (or dead-lettered).
    pub backlog: u64,
    /// Dead letters waiting to be sent again, after a replay.
    pub replaying: bool,
    /// The saved state.
    #[serde(flatten)]
    pub state: State,
}

/// The folder of the forwarding state in a data dir.
pub fn forward_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("forward")
}

/// The status of every destination that has forwarded from `data_dir`,
/// by app and name.
///
/// ```
/// let data = tempfile::tempdir()?;
/// assert!(tally_forward::status(data.path())?.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn status(data_dir: &Path) -> Result<Vec<Status>, ForwardError> {
    let root = forward_dir(data_dir);
    let mut found = Vec::new();
    for (app, app_dir) in subdirs(&root)? {
        let outbox = app_dir.join(OUTBOX_DIR);
        for (destination, dir) in subdirs(&app_dir)? {
            if destination == OUTBOX_DIR {
                continue;
            }
            let state = State::load(&dir)?;
            found.push(Status {
                backlog: backlog(&outbox, state.cursor)?,
                replaying: dir.join(REPLAY_FILE).exists(),
                app: app.clone(),
                destination,
                state,
            });
        }
    }
    Ok(found)
}

/// The folders in `dir` by name, in order (none if it does not exist).
fn subdirs(dir: &Path) -> Result<Vec<(String, PathBuf)>, ForwardError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ForwardError::io(dir, e)),
    };
    let mut found: Vec<(String, PathBuf)> = entries
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let name = entry.file_name().into_string().ok()?;
            entry
                .file_type()
                .ok()?
                .is_dir()
                .then(|| (name, entry.path()))
        })
        .collect();
    found.sort();
    Ok(found)
}

/// How many events of the outbox in `dir` lie at or after `cursor`.
pub(crate) fn backlog(dir: &Path, cursor: Cursor) -> Result<u64, ForwardError> {
    let mut count = 0;
    let segments = match crate::outbox::segments(dir) {
        Ok(segments) => segments,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(ForwardError::io(dir, e)),
    };
    for n in segments.into_iter().filter(|&n| n >= cursor.segment) {
        let offset = if n == cursor.segment {
            cursor.offset
        } else {
            0
        };
        crate::outbox::for_each_event(&crate::outbox::segment_path(dir, n), offset, |_| {
            count += 1
        })?;
    }
    Ok(count)
}

/// The folder of one destination's state.
fn destination_dir(data_dir: &Path, app: &str, destination: &str) -> Result<PathBuf, ForwardError> {
    let dir = forward_dir(data_dir).join(app).join(destination);
    if destination == OUTBOX_DIR || !dir.is_dir() {
        return Err(ForwardError::NoSuchDestination {
            app: app.into(),
            destination: destination.into(),
        });
    }
    Ok(dir)
}

/// Calls `sink` with each dead letter of a destination, oldest first.
pub fn dead_letters(
    data_dir: &Path,
    app: &str,
    destination: &str,
    mut sink: impl FnMut(DeadLetter),
) -> Result<(), ForwardError> {
    let path = destination_dir(data_dir, app, destination)?.join(DEAD_FILE);
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(ForwardError::io(&path, e)),
    };
    for line in BufReader::new(file).lines() {
        let line = line.map_err(|e| ForwardError::io(&path, e))?;
        sink(serde_json::from_str(&line).map_err(|_| ForwardError::Corrupt(path.clone()))?);
    }
    Ok(())
}

/// Queues a destination's dead letters to be sent again (by the running
/// server, or the next one to start) and returns how many there are. The
/// dead letters file is moved, not copied, so a letter is replayed once.
pub fn replay(data_dir: &Path, app: &str, destination: &str) -> Result<u64, ForwardError> {
    let dir = destination_dir(data_dir, app, destination)?;
    let (dead, replay) = (dir.join(DEAD_FILE), dir.join(REPLAY_FILE));
    if replay.exists() {
        return Err(ForwardError::ReplayInProgress {
            destination: destination.into(),
        });
    }
    let mut count = 0;
    dead_letters(data_dir, app, destination, |_| count += 1)?;
    if count > 0 {
        // A link fails where a rename would replace: two replays at once
        // cannot overwrite one another.
        match fs::hard_link(&dead, &replay) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(ForwardError::ReplayInProgress {
                    destination: destination.into(),
                });
            }
            other => other.map_err(|e| ForwardError::io(&dead, e))?,
        }
        fs::remove_file(&dead).map_err(|e| ForwardError::io(&dead, e))?;
    }
    Ok(count)
}
