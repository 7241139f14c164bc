//! The spool: finished events waiting to be sent, one file each.
//!
//! One file per event makes appends from parallel runs safe without a lock
//! (each run writes its own file and renames it into place), and makes
//! "remove what the server acknowledged" a plain delete. File names are the
//! events' UUIDv7 ids, so name order is time order and the oldest go first
//! when the spool is over its caps.

use std::io;
use std::path::{Path, PathBuf};

use tally_protocol::Event;

use crate::fsutil::write_atomic;

/// How much the spool may hold before the oldest events are dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolLimits {
    /// Most events kept.
    pub events: usize,
    /// Most bytes kept.
    pub bytes: u64,
}

impl Default for SpoolLimits {
    fn default() -> Self {
        Self {
            events: 1_000,
            bytes: 1 << 20,
        }
    }
}

const EVENT_EXT: &str = "json";
const DROPPED_PREFIX: &str = "dropped-";

pub(crate) struct Spool {
    dir: PathBuf,
    limits: SpoolLimits,
}

/// An event read back, with the file to delete once the server has it.
pub(crate) struct Spooled {
    pub path: PathBuf,
    pub event: Event,
}

impl Spool {
    pub(crate) fn new(dir: PathBuf, limits: SpoolLimits) -> Self {
        Self { dir, limits }
    }

    /// Adds an event, then trims the oldest beyond the caps.
    pub(crate) fn append(&self, event: &Event) -> io::Result<()> {
        let json = serde_json::to_vec(event).map_err(io::Error::other)?;
        write_atomic(&self.dir.join(format!("{}.{EVENT_EXT}", event.id)), &json)?;
        self.trim()
    }

    fn trim(&self) -> io::Result<()> {
        let mut files = self.event_files()?;
        let mut count = files.len();
        let mut bytes: u64 = files.iter().map(|(_, len)| len).sum();
        if count <= self.limits.events && bytes <= self.limits.bytes {
            return Ok(());
        }
        files.sort();
        let mut dropped = 0u64;
        for (path, len) in files {
            if count <= self.limits.events && bytes <= self.limits.bytes {
                break;
            }
            // Another run may have trimmed or sent it already: not ours to count.
            if std::fs::remove_file(&path).is_ok() {
                dropped += 1;
            }
            count -= 1;
            bytes -= len;
        }
        if dropped > 0 {
            let name = format!("{DROPPED_PREFIX}{}", uuid::Uuid::now_v7());
            write_atomic(&self.dir.join(name), dropped.to_string().as_bytes())?;
        }
        Ok(())
    }

    /// Event files with their sizes, in no particular order.
    fn event_files(&self) -> io::Result<Vec<(PathBuf, u64)>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut files = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let is_event = path.extension().is_some_and(|x| x == EVENT_EXT)
                && !entry.file_name().to_string_lossy().starts_with('.');
            if is_event {
                let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
                files.push((path, len));
            }
        }
        Ok(files)
    }

    /// Whether anything waits to be sent.
    pub(crate) fn is_empty(&self) -> bool {
        self.event_files().map_or(true, |f| f.is_empty())
    }

    /// The oldest events, up to `max_events` and about `max_bytes`. Files
    /// that do not parse are deleted: they can never be sent.
    pub(crate) fn oldest(&self, max_events: usize, max_bytes: usize) -> io::Result<Vec<Spooled>> {
        let mut files = self.event_files()?;
        files.sort();
        let mut batch = Vec::new();
        let mut total = 0;
        for (path, _) in files {
            if batch.len() >= max_events || total >= max_bytes {
                break;
            }
            let Ok(bytes) = std::fs::read(&path) else {
                continue; // sent and removed by another flusher meanwhile
            };
            match serde_json::from_slice::<Event>(&bytes) {
                Ok(event) => {
                    total += bytes.len();
                    batch.push(Spooled { path, event });
                }
                Err(_) => {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        Ok(batch)
    }

    /// Every spooled event, oldest first (for `telemetry show`).
    pub(crate) fn all(&self) -> io::Result<Vec<Event>> {
        Ok(self
            .oldest(usize::MAX, usize::MAX)?
            .into_iter()
            .map(|s| s.event)
            .collect())
    }

    /// How many events were dropped since the last acknowledged batch, and
    /// the marker files that say so (removed once a batch carried them).
    pub(crate) fn dropped(&self) -> (u64, Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return (0, Vec::new());
        };
        let mut total = 0;
        let mut markers = Vec::new();
        for entry in entries.flatten() {
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with(DROPPED_PREFIX)
            {
                let path = entry.path();
                if let Some(n) = std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|s| s.trim().parse::<u64>().ok())
                {
                    total += n;
                }
                markers.push(path);
            }
        }
        (total, markers)
    }

    /// Deletes everything in the spool; returns how many events were in it.
    pub(crate) fn purge(&self) -> io::Result<usize> {
        let count = self.event_files()?.len();
        remove_dir_contents(&self.dir)?;
        Ok(count)
    }
}

/// Removes `paths`, ignoring the ones already gone.
pub(crate) fn remove_all<'a>(paths: impl IntoIterator<Item = &'a Path>) {
    for path in paths {
        let _ = std::fs::remove_file(path);
    }
}

fn remove_dir_contents(dir: &Path) -> io::Result<()> {
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            for entry in entries.flatten() {
                let _ = std::fs::remove_file(entry.path());
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: u8) -> Event {
        let mut e: Event = serde_json::from_value(serde_json::json!({
            "id": uuid::Uuid::now_v7(), "timestamp": "2026-11-25T12:00:00Z", "app": "t",
            "app_version": "1", "install_id": uuid::Uuid::nil(), "command": format!("c{n}"),
            "flags": [], "exit_code": 0, "duration_ms": 1, "os": "linux", "arch": "x86_64"
        }))
        .expect("event");
        e.exit_code = i32::from(n);
        e
    }

    #[test]
    fn overflow_drops_the_oldest_and_counts_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spool = Spool::new(
            dir.path().to_owned(),
            SpoolLimits {
                events: 3,
                bytes: 1 << 20,
            },
        );
        for n in 0..5 {
            spool.append(&event(n)).expect("append");
        }
        let kept: Vec<i32> = spool
            .all()
            .expect("all")
            .iter()
            .map(|e| e.exit_code)
            .collect();
        assert_eq!(kept, [2, 3, 4]);
        assert_eq!(spool.dropped().0, 2);
    }

    #[test]
    fn a_corrupt_file_is_removed_not_sent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spool = Spool::new(dir.path().to_owned(), SpoolLimits::default());
        spool.append(&event(1)).expect("append");
        std::fs::write(dir.path().join("0000.json"), b"{half").expect("write");
        assert_eq!(spool.oldest(10, 1 << 20).expect("oldest").len(), 1);
        assert!(!dir.path().join("0000.json").exists());
    }
}
