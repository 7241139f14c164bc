//! The spool: finished events waiting to be sent, one file each.
//!
//! One file per event makes appends from parallel runs safe without a lock
//! (each run writes its own file and renames it into place), and makes
//! "remove what the server acknowledged" a plain delete. File names are the
//! events' UUIDv7 ids, so name order is time order and the oldest go first
//! when the spool is over its caps.
//!
//! What is lost is counted in one small file, `dropped`: the number of events
//! thrown away (trimmed over the caps, or refused by the server one by one)
//! since the last acknowledged batch that reported them. The next batch
//! carries it; once that batch is acknowledged, the number it carried is
//! taken off (drops counted meanwhile stay). Runs and the flusher change it
//! under a lock (`.dropped.lock`, waited for briefly, never long: a stopped
//! process may hold it), through a temporary file and a rename, so it is
//! one file whatever the endpoint does, and a reader never sees half a number.

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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
/// The drop counter and its lock; neither ends in `.json`, so neither is an event.
const DROPPED: &str = "dropped";
const DROPPED_LOCK: &str = ".dropped.lock";
/// Longest wait for the counter's lock, so no run hangs on another.
const LOCK_WAIT: Duration = Duration::from_millis(50);

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

    /// Adds an event, then trims the oldest beyond the caps. An event that
    /// cannot be written (a full disk, a cache dir the user cannot write)
    /// is lost: it is counted as dropped if the counter can be written,
    /// else lost uncounted. Neither waits: the CLI goes on.
    pub(crate) fn append(&self, event: &Event) -> io::Result<()> {
        let json = serde_json::to_vec(event).map_err(io::Error::other)?;
        if let Err(e) = write_atomic(&self.dir.join(format!("{}.{EVENT_EXT}", event.id)), &json) {
            let _ = self.count_dropped(1);
            return Err(e);
        }
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
        self.count_dropped(dropped)
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

    /// How many events were dropped since the last acknowledged batch.
    pub(crate) fn dropped(&self) -> u64 {
        read_count(&self.dir.join(DROPPED))
    }

    /// Counts `n` more events as dropped.
    pub(crate) fn count_dropped(&self, n: u64) -> io::Result<()> {
        if n == 0 {
            return Ok(());
        }
        self.update_dropped(|count| count.saturating_add(n))
    }

    /// Takes off the `n` drops that an acknowledged batch reported.
    pub(crate) fn reported_dropped(&self, n: u64) -> io::Result<()> {
        if n == 0 {
            return Ok(());
        }
        self.update_dropped(|count| count.saturating_sub(n))
    }

    fn update_dropped(&self, change: impl FnOnce(u64) -> u64) -> io::Result<()> {
        let _lock = self.lock_dropped()?;
        let path = self.dir.join(DROPPED);
        match change(read_count(&path)) {
            0 => match std::fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            },
            count => write_atomic(&path, count.to_string().as_bytes()),
        }
    }

    /// The counter's lock, held until the file is dropped.
    fn lock_dropped(&self) -> io::Result<File> {
        std::fs::create_dir_all(&self.dir)?;
        // Not truncated: another process may hold a lock on it.
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join(DROPPED_LOCK))?;
        let deadline = Instant::now() + LOCK_WAIT;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(file),
                Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(io::Error::new(
                        io::ErrorKind::WouldBlock,
                        "another run holds the drop counter's lock",
                    ));
                }
                Err(TryLockError::Error(e)) => return Err(e),
            }
        }
    }

    /// Deletes everything in the spool; returns how many events were in it.
    pub(crate) fn purge(&self) -> io::Result<usize> {
        let count = self.event_files()?.len();
        remove_dir_contents(&self.dir)?;
        Ok(count)
    }
}

/// The number in a counter file; 0 when it is missing or unreadable.
fn read_count(path: &Path) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
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
    use crate::testing::event;

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
        assert_eq!(spool.dropped(), 2);
    }

    /// Regression: every trim wrote a new `dropped-*` file, outside the caps.
    #[test]
    fn many_trims_keep_one_counter_and_the_spool_within_its_caps() {
        let dir = tempfile::tempdir().expect("tempdir");
        let limits = SpoolLimits {
            events: 5,
            bytes: 1 << 20,
        };
        let spool = Spool::new(dir.path().to_owned(), limits);
        for n in 0..200 {
            spool.append(&event(n)).expect("append");
        }
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("read dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|name| !name.ends_with(".json"))
            .collect();
        names.sort();
        assert_eq!(names, [DROPPED_LOCK, DROPPED]);
        assert_eq!(spool.event_files().expect("files").len(), 5);
        let count = std::fs::read_to_string(dir.path().join(DROPPED)).expect("counter");
        assert_eq!(count, "195");
    }

    #[test]
    fn an_acknowledged_report_takes_off_only_what_it_carried() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spool = Spool::new(dir.path().to_owned(), SpoolLimits::default());
        spool.count_dropped(3).expect("count");
        let carried = spool.dropped();
        spool.count_dropped(2).expect("count"); // dropped while the batch was on its way
        spool.reported_dropped(carried).expect("report");
        assert_eq!(spool.dropped(), 2);
        spool.reported_dropped(2).expect("report");
        assert_eq!(spool.dropped(), 0);
        assert!(!dir.path().join(DROPPED).exists());
    }

    /// A full disk (a real one, a tmpfs of fixed size) fails the append at
    /// once, leaves no temporary file behind to take the room, and counts
    /// the event as dropped; once there is room, events are spooled again.
    #[test]
    fn an_event_that_a_full_disk_refuses_is_counted_as_dropped() {
        let Some(disk) = tally_testkit::disk::Tmpfs::mount("256k") else {
            return;
        };
        let dir = disk.path().join("spool");
        let spool = Spool::new(dir.clone(), SpoolLimits::default());
        spool.append(&event(1)).expect("append");
        // Room for the drop counter, none for an event of several pages.
        let filler = disk.fill_but(4096);
        let mut large = event(2);
        large.command = "c".repeat(20_000);
        let refused = spool.append(&large).expect_err("no room for the event");
        assert_eq!(refused.kind(), io::ErrorKind::StorageFull, "{refused}");
        assert_eq!(spool.dropped(), 1);
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .expect("read dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|name| !name.ends_with(".json"))
            .collect();
        names.sort();
        assert_eq!(names, [DROPPED_LOCK, DROPPED], "no temporary file left");
        assert_eq!(spool.event_files().expect("files").len(), 1);
        std::fs::remove_file(filler).expect("remove filler");
        spool.append(&large).expect("append once there is room");
        assert_eq!(spool.event_files().expect("files").len(), 2);
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
