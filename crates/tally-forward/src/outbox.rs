//! The outbox: an app's stored events, on disk, in the order they were
//! stored, for each of its destinations to read at its own pace.
//!
//! The server appends to it after the store committed a group and before
//! it answers the group's requests, so an acknowledged event is in the
//! outbox too. A crash between the store's commit and the outbox's sync
//! leaves events stored but not in the outbox; their requests were never
//! answered, so their clients send them again, and the store calls them
//! duplicates. The outbox therefore takes duplicates as well and decides
//! itself with the same memory of recent ids the store's dedupe uses
//! ([`RecentIds`]): an event it holds is skipped, one it surely does not
//! hold is taken. So each event is in the outbox once.
//!
//! The outbox is a folder of segment files (`{n:016}.ndjson`, one event
//! per line in the export format). A line cut short by a crash was never
//! acknowledged: it is cut off when the outbox opens. A segment is deleted
//! once every destination has read past it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tally_protocol::StoredEvent;
use tally_store::RecentIds;
use tally_store::dedupe::{latest, presented};

use crate::ForwardError;

/// Where a segment is cut for the next (a group's lines are never split).
const SEGMENT_BYTES: u64 = 16 << 20;
/// The file holding the mark below which memory is incomplete after a
/// restart (see [`Outbox::open`]).
const MARK_FILE: &str = "mark";

/// A place in the outbox: a segment and bytes into it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Cursor {
    /// The segment's number.
    pub segment: u64,
    /// Bytes into the segment.
    pub offset: u64,
}

/// One stored event on its way into the outbox, encoded in the request's
/// thread so that the commit thread only writes.
#[derive(Debug, Clone)]
pub struct Outgoing {
    id: u128,
    presented: i64,
    latest: i64,
    /// The export line, with its newline.
    line: Vec<u8>,
}

impl Outgoing {
    /// The bytes it holds (its line).
    pub fn bytes(&self) -> usize {
        self.line.len()
    }

    /// `e`, encoded for the outbox.
    ///
    /// ```
    /// # let event: tally_protocol::Event = serde_json::from_str(r#"{
    /// #     "id": "0195f3a4-6c1e-7cc2-9d61-3f1d6f0b1a01", "timestamp": "2026-11-20T10:00:00Z",
    /// #     "app": "mycli", "app_version": "1.4.2", "install_id": "6f9619ff-8b86-4d01-b42d-00cf4fc964ff",
    /// #     "command": "deploy", "flags": [], "exit_code": 0, "duration_ms": 3,
    /// #     "os": "linux", "arch": "x86_64"}"#)?;
    /// # let at = time::OffsetDateTime::UNIX_EPOCH;
    /// let e = tally_protocol::StoredEvent { event, client_timestamp: at, received_at: at };
    /// let outgoing = tally_forward::Outgoing::of(&e);
    /// # let _ = outgoing;
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn of(e: &StoredEvent) -> Self {
        let mut line = serde_json::to_vec(e).expect("an event always serializes");
        line.push(b'\n');
        Self {
            id: e.event.id.as_u128(),
            presented: presented(e),
            latest: latest(e),
            line,
        }
    }
}

/// An app's outbox; shared by the commit thread (which appends) and the
/// app's senders (which read).
pub struct Outbox {
    dir: PathBuf,
    segment_bytes: u64,
    inner: Mutex<Inner>,
    /// Signalled on every append, and on [`Outbox::close`].
    appended: Condvar,
    /// Events appended since it was opened.
    count: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

struct Inner {
    memory: RecentIds,
    file: File,
    /// The durable end: readers never read past it.
    end: Cursor,
    /// The latest dedupe time in the current and the previous segment,
    /// which a restart reloads into memory (see [`Outbox::open`]).
    latest_now: i64,
    latest_before: i64,
    /// Where memory is complete from after a restart, as saved.
    mark: i64,
    /// The segment each reader is at (none: not registered).
    readers: Vec<u64>,
    closed: bool,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox").field("dir", &self.dir).finish()
    }
}

pub(crate) fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:016}.ndjson"))
}

/// The segment numbers in `dir`, in order.
pub(crate) fn segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut found: Vec<u64> = fs::read_dir(dir)?
        .filter_map(|entry| {
            let name = entry.ok()?.file_name();
            name.to_str()?.strip_suffix(".ndjson")?.parse().ok()
        })
        .collect();
    found.sort_unstable();
    Ok(found)
}

impl Outbox {
    /// Opens (or makes) the outbox in `dir`, remembering up to `capacity`
    /// ids; `now_us` (microseconds since the epoch) is where a new
    /// outbox's memory starts.
    ///
    /// A restart reloads the ids of the last two segments: memory is then
    /// complete from the mark on, which is past every event of the
    /// segments before them (and, for a new outbox, at its making: an event
    /// stored before forwarding began is only forwarded if the store takes
    /// it as new).
    pub fn open(dir: &Path, capacity: usize, now_us: i64) -> Result<Self, ForwardError> {
        Self::open_sized(dir, capacity, now_us, SEGMENT_BYTES)
    }

    /// [`Outbox::open`] with segments cut at `segment_bytes` rather than
    /// 16 MiB (for tests and benchmarks of what happens at a cut).
    pub fn open_sized(
        dir: &Path,
        capacity: usize,
        now_us: i64,
        segment_bytes: u64,
    ) -> Result<Self, ForwardError> {
        let at = |e: io::Error| ForwardError::io(dir, e);
        fs::create_dir_all(dir).map_err(at)?;
        let mark_path = dir.join(MARK_FILE);
        let mark = match fs::read_to_string(&mark_path) {
            Ok(text) => text
                .trim()
                .parse()
                .map_err(|_| ForwardError::Corrupt(mark_path.clone()))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                crate::state::write_atomically(&mark_path, now_us.to_string().as_bytes())?;
                now_us
            }
            Err(e) => return Err(at(e)),
        };
        let found = segments(dir).map_err(at)?;
        let current = found.last().copied().unwrap_or(0);
        let mut memory = RecentIds::new(capacity, mark);
        let mut latest_of = |n: u64| -> Result<i64, ForwardError> {
            let mut latest = i64::MIN;
            for_each_event(&segment_path(dir, n), 0, |e| {
                memory.remember(&e);
                latest = latest.max(tally_store::dedupe::latest(&e));
            })?;
            Ok(latest)
        };
        let latest_before = match found.len().checked_sub(2) {
            Some(i) => latest_of(found[i])?,
            None => i64::MIN,
        };
        let path = segment_path(dir, current);
        let len = complete_length(&path).map_err(at)?;
        let latest_now = if len > 0 {
            latest_of(current)?
        } else {
            i64::MIN
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(at)?;
        // Cut off a line a crash left unfinished.
        file.set_len(len).map_err(at)?;
        Ok(Self {
            dir: dir.to_owned(),
            segment_bytes,
            inner: Mutex::new(Inner {
                memory,
                file,
                end: Cursor {
                    segment: current,
                    offset: len,
                },
                latest_now,
                latest_before,
                mark,
                readers: Vec::new(),
                closed: false,
            }),
            appended: Condvar::new(),
            count: Default::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends the events of a committed group that the outbox does not
    /// hold yet: those the store took as new (`new[i]`), and those it took
    /// for duplicates that the outbox surely never had (see the module
    /// docs). Returns once they are on disk, with how many were taken.
    pub fn append(&self, events: &[Outgoing], new: &[bool]) -> Result<usize, ForwardError> {
        let mut inner = self.lock();
        let mut taken = Vec::new();
        let mut lines = Vec::new();
        let mut batch = foldhash::HashSet::default();
        for (e, &new) in events.iter().zip(new) {
            let held = inner.memory.contains(e.id) || !batch.insert(e.id);
            if held || !(new || inner.memory.covers(e.presented)) {
                continue;
            }
            taken.push(e);
            lines.extend_from_slice(&e.line);
        }
        if taken.is_empty() {
            return Ok(0);
        }
        if let Err(e) = inner
            .file
            .write_all(&lines)
            .and_then(|()| inner.file.sync_data())
        {
            // Nothing of it counts: cut off what was written, and forget
            // none of it, so that the client's retry puts it here.
            let _ = inner.file.set_len(inner.end.offset);
            return Err(ForwardError::io(&self.dir, e));
        }
        let mut latest = i64::MIN;
        for e in &taken {
            inner.memory.insert(e.id, e.latest);
            latest = latest.max(e.latest);
        }
        let count = taken.len();
        self.count
            .fetch_add(count as u64, std::sync::atomic::Ordering::Relaxed);
        inner.end.offset += lines.len() as u64;
        inner.latest_now = inner.latest_now.max(latest);
        if inner.end.offset >= self.segment_bytes {
            self.rotate(&mut inner)?;
        }
        drop(inner);
        self.appended.notify_all();
        Ok(count)
    }

    /// Starts the next segment, and deletes those every reader is past.
    fn rotate(&self, inner: &mut Inner) -> Result<(), ForwardError> {
        let at = |e: io::Error| ForwardError::io(&self.dir, e);
        // After a restart the previous segment's ids are no longer loaded:
        // memory is complete only past its events.
        let mark = inner.latest_before.saturating_add(1);
        if mark > inner.mark {
            crate::state::write_atomically(&self.dir.join(MARK_FILE), mark.to_string().as_bytes())?;
            inner.mark = mark;
        }
        let next = inner.end.segment + 1;
        inner.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(segment_path(&self.dir, next))
            .map_err(at)?;
        inner.end = Cursor {
            segment: next,
            offset: 0,
        };
        inner.latest_before = inner.latest_now;
        inner.latest_now = i64::MIN;
        self.prune(inner)
    }

    fn prune(&self, inner: &Inner) -> Result<(), ForwardError> {
        let oldest_read = inner
            .readers
            .iter()
            .copied()
            .min()
            .unwrap_or(inner.end.segment);
        for n in segments(&self.dir).map_err(|e| ForwardError::io(&self.dir, e))? {
            if n >= oldest_read.min(inner.end.segment.saturating_sub(1)) {
                break;
            }
            fs::remove_file(segment_path(&self.dir, n))
                .map_err(|e| ForwardError::io(&self.dir, e))?;
        }
        Ok(())
    }

    /// Registers a reader starting at `cursor` (a destination's saved one);
    /// its segments are kept until it moves past them with
    /// [`Outbox::advance`]. Returns its number.
    pub fn register(&self, cursor: Cursor) -> usize {
        let mut inner = self.lock();
        inner.readers.push(cursor.segment);
        inner.readers.len() - 1
    }

    /// Says that reader `reader` is at `cursor` now.
    pub fn advance(&self, reader: usize, cursor: Cursor) {
        if let Some(at) = self.lock().readers.get_mut(reader) {
            *at = cursor.segment;
        }
    }

    /// Up to `max` events from `cursor` on, and the cursor after them;
    /// waits up to `wait` for one to be appended when there is none.
    /// Returns nothing once the outbox is closed.
    pub fn read(
        &self,
        cursor: Cursor,
        max: usize,
        wait: Duration,
    ) -> Result<(Vec<StoredEvent>, Cursor), ForwardError> {
        let mut cursor = self.hop(cursor)?;
        let end = {
            let inner = self.lock();
            let inner = if inner.end <= cursor && !inner.closed {
                self.appended
                    .wait_timeout(inner, wait)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
            } else {
                inner
            };
            if inner.closed {
                return Ok((Vec::new(), cursor));
            }
            inner.end
        };
        if cursor > end {
            // Past the end: the outbox was made anew under a destination's
            // saved cursor. What is there now is what it has not had.
            tracing::warn!(dir = %self.dir.display(), "A cursor past the outbox's end starts at its start.");
            cursor = Cursor::default();
        }
        cursor = self.hop(cursor)?;
        let limit = if cursor.segment == end.segment {
            end.offset
        } else {
            u64::MAX
        };
        let mut events = Vec::new();
        let path = segment_path(&self.dir, cursor.segment);
        let after = read_lines(&path, cursor.offset, limit, max, |e| events.push(e))?;
        Ok((
            events,
            Cursor {
                segment: cursor.segment,
                offset: after,
            },
        ))
    }

    /// `cursor`, moved past the segments it has read to their end (the
    /// next one exists once the end has moved past them).
    fn hop(&self, mut cursor: Cursor) -> Result<Cursor, ForwardError> {
        let end = self.lock().end;
        while cursor.segment < end.segment {
            let path = segment_path(&self.dir, cursor.segment);
            let len = match fs::metadata(&path) {
                Ok(m) => m.len(),
                // Deleted: every reader was past it.
                Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
                Err(e) => return Err(ForwardError::io(&path, e)),
            };
            if cursor.offset < len {
                break;
            }
            cursor = Cursor {
                segment: cursor.segment + 1,
                offset: 0,
            };
        }
        Ok(cursor)
    }

    /// Wakes every reader waiting in [`Outbox::read`] and makes reads
    /// return nothing from now on: the server is stopping.
    pub fn close(&self) {
        self.lock().closed = true;
        self.appended.notify_all();
    }

    /// How many events were appended since it was opened.
    pub fn appended(&self) -> u64 {
        self.count.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The counter behind [`Outbox::appended`], for counts that follow it
    /// without the outbox.
    pub(crate) fn appended_counter(&self) -> std::sync::Arc<std::sync::atomic::AtomicU64> {
        std::sync::Arc::clone(&self.count)
    }

    /// Its folder.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The durable end of the outbox.
    pub fn end(&self) -> Cursor {
        self.lock().end
    }
}

/// The length of `path` up to its last newline (0 if it does not exist).
pub(crate) fn complete_length(path: &Path) -> io::Result<u64> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    let mut end = len;
    let mut buf = [0u8; 4096];
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(chunk)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// Reads the lines of `path` (each a `T` as JSON) from byte `offset` up to
/// `limit`, at most `max` of them, passing each to `sink`; returns the
/// offset after the last.
pub(crate) fn read_lines<T: serde::de::DeserializeOwned>(
    path: &Path,
    offset: u64,
    limit: u64,
    max: usize,
    mut sink: impl FnMut(T),
) -> Result<u64, ForwardError> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(offset),
        Err(e) => return Err(ForwardError::io(path, e)),
    };
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| ForwardError::io(path, e))?;
    let mut reader = BufReader::new(file.take(limit.saturating_sub(offset)));
    let mut at = offset;
    let mut line = Vec::new();
    for _ in 0..max {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| ForwardError::io(path, e))?;
        if n == 0 || line.last() != Some(&b'\n') {
            break;
        }
        let event =
            serde_json::from_slice(&line).map_err(|_| ForwardError::Corrupt(path.into()))?;
        at += n as u64;
        sink(event);
    }
    Ok(at)
}

/// Calls `sink` with every complete event of `path` from byte `offset` on.
pub(crate) fn for_each_event(
    path: &Path,
    offset: u64,
    mut sink: impl FnMut(StoredEvent),
) -> Result<(), ForwardError> {
    let mut at = offset;
    loop {
        let before = at;
        at = read_lines(path, at, u64::MAX, 1024, &mut sink)?;
        if at == before {
            return Ok(());
        }
    }
}
