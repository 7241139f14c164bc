//! The write-ahead journal: accepted events on disk, synced, before the
//! store has them.
//!
//! A store whose commits are slow or stall now and then (DuckDB checkpoints
//! for a second) would make every request wait for them. Instead, a batch is
//! acknowledged once it is appended here and synced, which takes a
//! millisecond; the store loads the journal behind, in transactions as large
//! as the backlog, and records in each how far it loaded. After a crash, the
//! records past that point are loaded again when the store opens, so each
//! acknowledged event is stored exactly once.
//!
//! The journal is a folder of segment files numbered in order. A segment
//! starts with [`MAGIC`], which names the format: a segment of another
//! format is refused rather than skipped, so a journal left by a crash is
//! never silently dropped by a Tally that writes a newer one. A record is
//! its payload's length and CRC-32 (little-endian `u32`s) and the payload,
//! the batch's events in [binary form](record). A record cut short by a
//! crash fails its length or checksum; it was never acknowledged, and the
//! rest of its segment is ignored. Segments of the first format, whose
//! payloads were the events as NDJSON (the export format), are still read.
//!
//! Segments are made at their full size ahead of need and reused once
//! loaded (as PostgreSQL does with its WAL): a sync then writes the
//! record's data only. Appending to a growing file also made each sync
//! write the file's size, which on ext4 waits for the file system's own
//! journal, and with it for whatever DuckDB had written meanwhile: tens of
//! milliseconds, now and then. A reused segment still holds its old
//! records past the new ones, so a record's checksum covers the segment's
//! number too: an old record never passes for a new one.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use crate::StoreError;

mod read;
mod record;

pub(crate) use read::{end, replay};
pub(crate) use record::Encoded;

/// The size segments are made at; a record that does not fit in the rest
/// of one starts the next.
const SEGMENT_BYTES: u64 = 16 << 20;
/// Loaded segments kept for reuse beyond the one being written.
const AHEAD: usize = 2;
/// A larger length field than this is corruption, not a batch.
const MAX_RECORD: u32 = 1 << 30;
const HEADER: usize = 8;
/// The first bytes of every segment: the format and its version.
const MAGIC: &[u8; 8] = b"TALLYJ3\n";
/// The second format's: binary records without the events' source,
/// written by Tally until 2026-12; their events are all the SDKs'.
const MAGIC_UNSOURCED: &[u8; 8] = b"TALLYJ2\n";
/// The first format's: records of NDJSON, written by Tally until 2026-12.
const MAGIC_NDJSON: &[u8; 8] = b"TALLYJ1\n";

/// Where a record ends: what a store records as loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub(crate) struct Position {
    /// The segment's number.
    pub segment: u64,
    /// Bytes into the segment.
    pub offset: u64,
}

/// The open end of a journal: appends to its current segment.
pub(crate) struct Journal {
    files: Recycler,
    /// The segment written (the files' `current`, kept here so that an
    /// append never waits for the lock the loader holds while it recycles).
    segment: u64,
    /// The segment's file; none after a failed append, or when none could
    /// be had (a full disk), until the next append moves on to a new one.
    file: Option<File>,
    len: u64,
    buf: Vec<u8>,
}

/// The journal's segment files: the one being written, those made ahead
/// of it (numbered after it and holding no record of theirs), and those
/// before it, which wait to be loaded.
struct Files {
    dir: PathBuf,
    /// The segment being written (0: none).
    current: u64,
    /// Segments made ahead, in order.
    ahead: VecDeque<u64>,
    /// The highest number a segment had or has.
    highest: u64,
}

/// What lets the loader hand loaded segments back for reuse while the
/// writer appends.
#[derive(Clone)]
pub(crate) struct Recycler(Arc<Mutex<Files>>);

fn io_error(what: &str, path: &Path, e: io::Error) -> StoreError {
    StoreError::io(&format!("journal {what} {}", path.display()), e)
}

fn segment_path(dir: &Path, segment: u64) -> PathBuf {
    dir.join(format!("{segment:020}.journal"))
}

/// The journal's segments in `dir`, oldest first.
fn segments(dir: &Path) -> Result<Vec<u64>, StoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error("reading", dir, e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let name = entry.map_err(|e| io_error("reading", dir, e))?.file_name();
        if let Some(n) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".journal"))
            .and_then(|n| n.parse().ok())
        {
            found.push(n);
        }
    }
    found.sort_unstable();
    Ok(found)
}

/// Makes a file's creation, renaming or removal in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error("syncing", dir, e))
}

/// A record's checksum: of its payload and of the segment it is in.
fn checksum(segment: u64, payload: &[u8]) -> u32 {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&segment.to_le_bytes());
    crc.update(payload);
    crc.finalize()
}

impl Files {
    /// The files in `dir`, whose segments up to `loaded` are loaded and
    /// after it hold no record (a crash's were loaded when the store
    /// opened, and the next record goes after them).
    fn scan(dir: &Path, loaded: u64) -> Result<Self, StoreError> {
        crate::owner_only::create_dir(dir).map_err(|e| io_error("creating", dir, e))?;
        let found = segments(dir)?;
        // Segments of a Tally that made them with the umask's mode.
        for &segment in &found {
            let path = segment_path(dir, segment);
            crate::owner_only::restrict(&path).map_err(|e| io_error("restricting", &path, e))?;
        }
        Ok(Self {
            dir: dir.to_owned(),
            current: 0,
            ahead: found.iter().copied().filter(|&s| s > loaded).collect(),
            highest: found.last().copied().unwrap_or(0).max(loaded),
        })
    }

    /// Moves on to the next segment, made ahead or made now, and returns
    /// it positioned after its magic.
    fn next(&mut self) -> Result<File, StoreError> {
        if let Some(segment) = self.ahead.pop_front() {
            let path = segment_path(&self.dir, segment);
            let mut file = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| io_error("opening", &path, e))?;
            // A reused segment may be of an older format.
            file.write_all(MAGIC)
                .map_err(|e| io_error("writing", &path, e))?;
            self.current = segment;
            return Ok(file);
        }
        let segment = self.highest + 1;
        let path = segment_path(&self.dir, segment);
        let mut file = zeroed(&path)?;
        file.seek(SeekFrom::Start(MAGIC.len() as u64))
            .map_err(|e| io_error("creating", &path, e))?;
        sync_dir(&self.dir)?;
        (self.current, self.highest) = (segment, segment);
        Ok(file)
    }

    /// Renames the segments before `below` (loaded, all of them, and not
    /// the one written) to follow the last one, to be written again, or
    /// removes them once enough are ahead.
    fn recycle(&mut self, below: u64) -> Result<(), StoreError> {
        let old: Vec<u64> = segments(&self.dir)?
            .into_iter()
            .filter(|&s| s < below && s != self.current && !self.ahead.contains(&s))
            .collect();
        if old.is_empty() {
            return Ok(());
        }
        for segment in old {
            let path = segment_path(&self.dir, segment);
            // Another format's records pass its own checks, not ours: such a
            // segment would be read as holding them again.
            if self.ahead.len() < AHEAD && has_magic(&path) {
                let to = segment_path(&self.dir, self.highest + 1);
                fs::rename(&path, &to).map_err(|e| io_error("renaming", &path, e))?;
                self.highest += 1;
                self.ahead.push_back(self.highest);
            } else {
                fs::remove_file(&path).map_err(|e| io_error("removing", &path, e))?;
            }
        }
        sync_dir(&self.dir)
    }
}

/// Makes a segment file at `path`, [`MAGIC`] and zeros to the full size,
/// synced with its size, so that appends to it overwrite and never grow it.
/// A file that could not be made whole is removed: on a full disk, what it
/// took is the room the database needs to go on.
fn zeroed(path: &Path) -> Result<File, StoreError> {
    let mut file = crate::owner_only::file_options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|e| io_error("creating", path, e))?;
    let written = file
        .write_all(MAGIC)
        .and_then(|()| zeros(&mut file, SEGMENT_BYTES - MAGIC.len() as u64))
        .and_then(|()| file.sync_all());
    if let Err(e) = written {
        drop(file);
        let _ = fs::remove_file(path);
        return Err(io_error("creating", path, e));
    }
    Ok(file)
}

/// Writes `len` zero bytes to `file`.
fn zeros(file: &mut File, len: u64) -> io::Result<()> {
    let chunk = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        file.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    Ok(())
}

/// Whether the file system of the journal in `dir` has room for a segment
/// (and so, most likely, for the database's next commit): a file of that
/// size is written and removed. The question costs little when the answer
/// is no, as a write to a full disk fails at once.
pub(crate) fn has_room(dir: &Path) -> bool {
    let probe = dir.join("room.probe");
    let written = crate::owner_only::file_options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&probe)
        .and_then(|mut file| zeros(&mut file, SEGMENT_BYTES));
    let _ = fs::remove_file(&probe);
    written.is_ok()
}

/// Whether the file at `path` starts with this format's [`MAGIC`].
fn has_magic(path: &Path) -> bool {
    let mut magic = [0u8; MAGIC.len()];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && &magic == MAGIC
}

impl Recycler {
    fn lock(&self) -> std::sync::MutexGuard<'_, Files> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands back the segments before `below`, which are loaded: kept for
    /// reuse ahead of the writer, or removed. While fewer than needed are
    /// ahead, makes one more, without holding up the writer meanwhile: a
    /// writer that has to make its next segment itself keeps its requests
    /// waiting for it.
    pub(crate) fn recycle(&self, below: u64) -> Result<(), StoreError> {
        let dir = {
            let mut files = self.lock();
            files.recycle(below)?;
            if files.ahead.len() >= AHEAD {
                return Ok(());
            }
            files.dir.clone()
        };
        let spare = dir.join("ahead.tmp");
        zeroed(&spare)?;
        let mut files = self.lock();
        let segment = files.highest + 1;
        let path = segment_path(&dir, segment);
        fs::rename(&spare, &path).map_err(|e| io_error("renaming", &spare, e))?;
        sync_dir(&dir)?;
        files.highest = segment;
        files.ahead.push_back(segment);
        Ok(())
    }
}

impl Journal {
    /// Starts writing in `dir`, whose segments up to `after` are loaded and
    /// after it hold no record (a crash's were loaded when the store
    /// opened), at the first segment after it.
    /// On a full disk without a segment made ahead, the journal opens all
    /// the same, and appends fail until there is room for a segment: a
    /// store must open on a full disk, or its server restarts in a loop.
    pub(crate) fn create(dir: &Path, after: u64) -> Result<Self, StoreError> {
        let mut files = Files::scan(dir, after)?;
        let file = match files.next() {
            Ok(file) => Some(file),
            Err(e) if e.is_disk_full() => None,
            Err(e) => return Err(e),
        };
        let segment = files.current;
        Ok(Self {
            files: Recycler(Arc::new(Mutex::new(files))),
            segment,
            file,
            len: MAGIC.len() as u64,
            buf: Vec::new(),
        })
    }

    /// What the loader recycles loaded segments with.
    pub(crate) fn recycler(&self) -> Recycler {
        self.files.clone()
    }

    /// Appends encoded events, given as pieces of [`Encoded`] bytes, as one
    /// record and syncs it to disk; returns where the record ends. On
    /// failure nothing of it counts: the next record goes to a new segment.
    pub(crate) fn append<'a>(
        &mut self,
        events: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Position, StoreError> {
        self.buf.clear();
        self.buf.extend_from_slice(&[0; HEADER]);
        for piece in events {
            self.buf.extend_from_slice(piece);
        }
        let payload = &self.buf[HEADER..];
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|&n| n <= MAX_RECORD)
            .ok_or_else(|| StoreError::Invalid("batch too large for one journal record".into()))?;
        if self.len > MAGIC.len() as u64 && self.len + self.buf.len() as u64 > SEGMENT_BYTES {
            self.file = None;
        }
        let file = match self.file {
            Some(ref mut file) => file,
            None => {
                let mut files = self.files.lock();
                let file = files.next()?;
                self.segment = files.current;
                self.len = MAGIC.len() as u64;
                self.file.insert(file)
            }
        };
        let crc = checksum(self.segment, &self.buf[HEADER..]);
        self.buf[..4].copy_from_slice(&len.to_le_bytes());
        self.buf[4..HEADER].copy_from_slice(&crc.to_le_bytes());
        let written = file.write_all(&self.buf).and_then(|()| file.sync_data());
        if let Err(e) = written {
            // What reached the file fails its checksum, or is never
            // reached: the next record starts a new segment. The record
            // may yet be whole if only the sync failed; its header is
            // zeroed (the bytes are there, so this needs no room), as a
            // catching-up loader would otherwise load what the client was
            // told failed, and its retry once more.
            let _ = file
                .seek(SeekFrom::Start(self.len))
                .and_then(|_| file.write_all(&[0; HEADER]))
                .and_then(|()| file.sync_data());
            self.file = None;
            let path = segment_path(&self.files.lock().dir, self.segment);
            return Err(io_error("writing", &path, e));
        }
        self.len += self.buf.len() as u64;
        Ok(Position {
            segment: self.segment,
            offset: self.len,
        })
    }
}

/// Recycles the segments of `dir` up to `loaded`, all of them loaded, when
/// no writer has the journal open.
pub(crate) fn recycle_loaded(dir: &Path, loaded: u64) -> Result<(), StoreError> {
    Files::scan(dir, loaded)?.recycle(loaded + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_protocol::StoredEvent;
    use tally_testkit::events::sample;
    use time::macros::datetime;

    /// Appends `events` as one record.
    fn append(journal: &mut Journal, events: &[StoredEvent]) -> Position {
        journal
            .append([Encoded::new(events).bytes()])
            .expect("append")
    }

    /// Every event the journal in `dir` replays.
    fn replayed(dir: &Path) -> Vec<StoredEvent> {
        let mut back = Vec::new();
        replay(dir, Position::default(), |mut e, _| {
            back.append(&mut e);
            Ok(())
        })
        .expect("replay");
        back
    }

    fn all(dir: &Path, from: Position) -> Vec<(Vec<u128>, Position)> {
        let mut seen = Vec::new();
        replay(dir, from, |events, at| {
            seen.push((events.iter().map(|e| e.event.id.as_u128()).collect(), at));
            Ok(())
        })
        .expect("replay");
        seen
    }

    #[test]
    fn replays_records_after_a_position_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let at = datetime!(2026-11-20 10:00:00 UTC);
        let events: Vec<_> = (0..5).map(|n| sample(n, "j", at)).collect();
        let mut journal = Journal::create(dir.path(), 0).expect("create");
        let first = append(&mut journal, &events[..2]);
        let second = append(&mut journal, &events[2..]);
        let ids = |r: std::ops::Range<usize>| -> Vec<u128> {
            events[r].iter().map(|e| e.event.id.as_u128()).collect()
        };
        assert_eq!(
            all(dir.path(), Position::default()),
            [(ids(0..2), first), (ids(2..5), second)]
        );
        assert_eq!(all(dir.path(), first), [(ids(2..5), second)]);
        assert_eq!(all(dir.path(), second), []);
        // Events come back field for field.
        assert_eq!(replayed(dir.path()), events);
    }

    #[test]
    fn a_record_cut_short_by_a_crash_is_not_replayed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let at = datetime!(2026-11-20 10:00:00 UTC);
        let mut journal = Journal::create(dir.path(), 0).expect("create");
        let kept = append(&mut journal, &[sample(1, "j", at)]);
        append(&mut journal, &[sample(2, "j", at)]);
        drop(journal);
        let path = segment_path(dir.path(), kept.segment);
        let file = OpenOptions::new().write(true).open(&path).expect("open");
        file.set_len(kept.offset + 20).expect("truncate");
        let seen = all(dir.path(), Position::default());
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].1, kept);
        // A new journal starts a new segment, so nothing follows the cut.
        let mut next = Journal::create(dir.path(), kept.segment).expect("create");
        let after = append(&mut next, &[sample(3, "j", at)]);
        assert_eq!(after.segment, kept.segment + 1);
        assert_eq!(all(dir.path(), kept).len(), 1);
    }

    /// A new segment after `after` holding one record, of event `n`.
    fn one_record(dir: &Path, after: u64, n: u32) -> Position {
        let at = datetime!(2026-11-20 10:00:00 UTC);
        append(
            &mut Journal::create(dir, after).expect("create"),
            &[sample(n, "j", at)],
        )
    }

    /// Changes the bytes of `segment` on disk.
    fn edit(dir: &Path, segment: u64, change: impl FnOnce(&mut Vec<u8>)) {
        let path = segment_path(dir, segment);
        let mut bytes = fs::read(&path).expect("read");
        change(&mut bytes);
        fs::write(&path, bytes).expect("write");
    }

    /// A store that could not load its journal at open (a full disk) has
    /// records past its loaded position in later segments: its writer
    /// starts after them rather than reuse their segment.
    #[test]
    fn a_writer_starts_after_the_records_not_yet_loaded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let loaded = one_record(dir.path(), 0, 1);
        let unloaded = one_record(dir.path(), loaded.segment, 2);
        let after = end(dir.path(), loaded).expect("end");
        assert_eq!(after, unloaded);
        let next = one_record(dir.path(), after.segment, 3);
        assert!(next.segment > unloaded.segment, "{next:?}");
        let ids: Vec<Vec<u128>> = all(dir.path(), loaded).into_iter().map(|r| r.0).collect();
        let id = |n: u32| {
            sample(n, "j", datetime!(2026-11-20 10:00:00 UTC))
                .event
                .id
                .as_u128()
        };
        assert_eq!(ids, [vec![id(2)], vec![id(3)]]);
        assert_eq!(
            end(dir.path(), next).expect("end"),
            next,
            "nothing after the last"
        );
    }

    #[test]
    fn a_flipped_byte_ends_the_segment() {
        let dir = tempfile::tempdir().expect("tempdir");
        let end = one_record(dir.path(), 0, 1);
        edit(dir.path(), end.segment, |b| {
            b[MAGIC.len() + HEADER + 3] ^= 1
        });
        assert_eq!(all(dir.path(), Position::default()), []);
    }

    #[test]
    fn a_segment_of_another_format_is_refused_not_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let end = one_record(dir.path(), 0, 1);
        edit(dir.path(), end.segment, |b| b[6] = b'9');
        let refused = replay(dir.path(), Position::default(), |_, _| Ok(()));
        assert!(
            matches!(refused, Err(StoreError::Corrupt(_))),
            "{refused:?}"
        );
    }

    #[test]
    fn segments_of_the_ndjson_format_are_still_replayed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let at = datetime!(2026-11-20 10:00:00 UTC);
        let events: Vec<_> = (0..3).map(|n| sample(n, "j", at)).collect();
        let mut payload = Vec::new();
        for event in &events {
            serde_json::to_writer(&mut payload, event).expect("json");
            payload.push(b'\n');
        }
        let mut segment = MAGIC_NDJSON.to_vec();
        segment.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        segment.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        segment.extend_from_slice(&payload);
        fs::write(segment_path(dir.path(), 1), segment).expect("write");
        assert_eq!(replayed(dir.path()), events);
    }

    #[test]
    fn segments_of_the_unsourced_format_are_still_replayed_as_the_sdks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let at = datetime!(2026-11-20 10:00:00 UTC);
        let events: Vec<_> = (0..3).map(|n| sample(n, "j", at)).collect();
        // The second format's record: this one's without each event's last
        // byte, its source.
        let encoded = Encoded::new(&events);
        let mut payload = Vec::new();
        for i in 0..events.len() {
            let (_, event) = encoded.event(i).split_last().expect("bytes");
            payload.extend_from_slice(event);
        }
        let mut segment = MAGIC_UNSOURCED.to_vec();
        segment.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        segment.extend_from_slice(&checksum(1, &payload).to_le_bytes());
        segment.extend_from_slice(&payload);
        fs::write(segment_path(dir.path(), 1), segment).expect("write");
        assert_eq!(replayed(dir.path()), events);
    }

    #[test]
    fn loaded_segments_are_kept_ahead_for_reuse_and_the_rest_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        for after in 0..4 {
            Journal::create(dir.path(), after).expect("create");
        }
        assert_eq!(segments(dir.path()).expect("segments"), [1, 2, 3, 4]);
        recycle_loaded(dir.path(), 4).expect("recycle");
        assert_eq!(segments(dir.path()).expect("segments"), [5, 6]);
        // The next writer takes one made ahead instead of making one.
        let journal = Journal::create(dir.path(), 4).expect("create");
        assert_eq!(journal.segment, 5);
        assert_eq!(segments(dir.path()).expect("segments"), [5, 6]);
    }

    #[test]
    fn a_reused_segment_never_replays_its_old_records() {
        let dir = tempfile::tempdir().expect("tempdir");
        let at = datetime!(2026-11-20 10:00:00 UTC);
        let (old, kept) = (sample(1, "j", at), sample(2, "j", at));
        let mut new = old.clone();
        new.event.id = uuid::Uuid::from_u128(3);
        let mut journal = Journal::create(dir.path(), 0).expect("create");
        append(&mut journal, std::slice::from_ref(&old));
        append(&mut journal, std::slice::from_ref(&kept));
        // A record too large for the rest of segment 1 starts segment 2.
        let filler = vec![7u8; SEGMENT_BYTES as usize];
        let loaded = journal.append([&filler[..]]).expect("append");
        assert_eq!(loaded.segment, 2);
        journal.recycler().recycle(2).expect("recycle");
        // Segment 1, with its two records, is now segment 3, next in line;
        // the new record, as long as the first old one, ends right where
        // the second old one starts.
        let end = append(&mut journal, std::slice::from_ref(&new));
        assert_eq!(end.segment, 3);
        let ids: Vec<u128> = vec![3];
        assert_eq!(all(dir.path(), loaded), [(ids, end)]);
    }

    #[test]
    fn segments_of_another_format_are_removed_not_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::create_dir_all(dir.path()).expect("dir");
        fs::write(segment_path(dir.path(), 1), MAGIC_NDJSON).expect("write");
        recycle_loaded(dir.path(), 1).expect("recycle");
        assert!(segments(dir.path()).expect("segments").is_empty());
    }
}
