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

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use crate::{StoreError, StoredEvent};

mod record;

pub(crate) use record::Encoded;

/// A segment is closed and a new one started beyond this size.
const SEGMENT_BYTES: u64 = 64 << 20;
/// A larger length field than this is corruption, not a batch.
const MAX_RECORD: u32 = 1 << 30;
const HEADER: usize = 8;
/// The first bytes of every segment: the format and its version.
const MAGIC: &[u8; 8] = b"TALLYJ2\n";
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

/// The open end of a journal: appends to its newest segment.
pub(crate) struct Journal {
    dir: PathBuf,
    segment: u64,
    file: File,
    len: u64,
    buf: Vec<u8>,
}

fn io_error(what: &str, path: &Path, e: io::Error) -> StoreError {
    StoreError::Unavailable(format!("journal {what} {}: {e}", path.display()))
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

fn new_segment(dir: &Path, segment: u64) -> Result<File, StoreError> {
    let path = segment_path(dir, segment);
    let mut file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&path)
        .map_err(|e| io_error("creating", &path, e))?;
    file.write_all(MAGIC)
        .and_then(|()| file.sync_data())
        .map_err(|e| io_error("creating", &path, e))?;
    sync_dir(dir)?;
    Ok(file)
}

/// Makes a file's creation or removal in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error("syncing", dir, e))
}

impl Journal {
    /// Starts a new segment in `dir`, numbered after `after` and after every
    /// segment there.
    pub(crate) fn create(dir: &Path, after: u64) -> Result<Self, StoreError> {
        fs::create_dir_all(dir).map_err(|e| io_error("creating", dir, e))?;
        let last = segments(dir)?.last().copied().unwrap_or(0);
        let segment = after.max(last) + 1;
        Ok(Self {
            dir: dir.to_owned(),
            segment,
            file: new_segment(dir, segment)?,
            len: MAGIC.len() as u64,
            buf: Vec::new(),
        })
    }

    fn rotate(&mut self) -> Result<(), StoreError> {
        self.file = new_segment(&self.dir, self.segment + 1)?;
        self.segment += 1;
        self.len = MAGIC.len() as u64;
        Ok(())
    }

    /// Appends encoded events, given as pieces of [`Encoded`] bytes, as one
    /// record and syncs it to disk; returns where the record ends. On
    /// failure nothing of it counts: the segment is cut back and the next
    /// record goes to a new one.
    pub(crate) fn append<'a>(
        &mut self,
        events: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Position, StoreError> {
        if self.len >= SEGMENT_BYTES {
            self.rotate()?;
        }
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
        let crc = crc32fast::hash(payload);
        self.buf[..4].copy_from_slice(&len.to_le_bytes());
        self.buf[4..HEADER].copy_from_slice(&crc.to_le_bytes());
        let written = self
            .file
            .write_all(&self.buf)
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            let path = segment_path(&self.dir, self.segment);
            // A partial record would end the segment for replay; keep what
            // was acknowledged readable by cutting it off and moving on.
            let _ = self.file.set_len(self.len);
            self.len = SEGMENT_BYTES;
            return Err(io_error("writing", &path, e));
        }
        self.len += self.buf.len() as u64;
        Ok(Position {
            segment: self.segment,
            offset: self.len,
        })
    }
}

/// Calls `each` with every record after `from`, in order, and the position
/// where it ends. A record cut short ends its segment.
pub(crate) fn replay(
    dir: &Path,
    from: Position,
    mut each: impl FnMut(Vec<StoredEvent>, Position) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    for segment in segments(dir)? {
        if segment < from.segment {
            continue;
        }
        let path = segment_path(dir, segment);
        let file = File::open(&path).map_err(|e| io_error("opening", &path, e))?;
        let mut reader = BufReader::new(file);
        let mut magic = [0u8; MAGIC.len()];
        // A segment cut short before its magic was synced holds no record.
        if !read_full(&mut reader, &mut magic).map_err(|e| io_error("reading", &path, e))? {
            continue;
        }
        let ndjson = match &magic {
            MAGIC => false,
            MAGIC_NDJSON => true,
            _ => {
                return Err(StoreError::Corrupt(format!(
                    "journal segment {} is not of a format this Tally reads; \
                     load it with the Tally that wrote it",
                    path.display()
                )));
            }
        };
        let corrupt = |e: &dyn std::fmt::Display| {
            StoreError::Corrupt(format!("journal {}: {e}", path.display()))
        };
        let mut offset = MAGIC.len() as u64;
        let mut payload = Vec::new();
        loop {
            let mut header = [0u8; HEADER];
            match read_record(&mut reader, &mut header, &mut payload) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => return Err(io_error("reading", &path, e)),
            }
            offset += (HEADER + payload.len()) as u64;
            let at = Position { segment, offset };
            if at <= from {
                continue;
            }
            let events = if ndjson {
                payload
                    .split(|&b| b == b'\n')
                    .filter(|line| !line.is_empty())
                    .map(serde_json::from_slice)
                    .collect::<Result<Vec<StoredEvent>, _>>()
                    .map_err(|e| corrupt(&e))?
            } else {
                record::decode(&payload).map_err(|e| corrupt(&e))?
            };
            each(events, at)?;
        }
    }
    Ok(())
}

/// Reads one whole, intact record into `payload`; false at the end of the
/// segment or at a record cut short.
fn read_record(
    reader: &mut impl Read,
    header: &mut [u8; HEADER],
    payload: &mut Vec<u8>,
) -> io::Result<bool> {
    if !read_full(reader, header)? {
        return Ok(false);
    }
    let [l0, l1, l2, l3, c0, c1, c2, c3] = *header;
    let len = u32::from_le_bytes([l0, l1, l2, l3]);
    if len > MAX_RECORD {
        return Ok(false);
    }
    payload.resize(len as usize, 0);
    Ok(read_full(reader, payload)?
        && crc32fast::hash(payload) == u32::from_le_bytes([c0, c1, c2, c3]))
}

/// Fills `buf`; false if the input ends first.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    match reader.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

/// Deletes the segments wholly before `keep`, which the store has loaded.
pub(crate) fn remove_before(dir: &Path, keep: u64) -> Result<(), StoreError> {
    let old: Vec<u64> = segments(dir)?.into_iter().filter(|&s| s < keep).collect();
    for &segment in &old {
        let path = segment_path(dir, segment);
        fs::remove_file(&path).map_err(|e| io_error("removing", &path, e))?;
    }
    if !old.is_empty() {
        sync_dir(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::sample;
    use time::macros::datetime;

    /// Appends `events` as one record.
    fn append(journal: &mut Journal, events: &[StoredEvent]) -> Position {
        journal
            .append([Encoded::new(events).bytes()])
            .expect("append")
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
        let mut back = Vec::new();
        replay(dir.path(), Position::default(), |mut e, _| {
            back.append(&mut e);
            Ok(())
        })
        .expect("replay");
        assert_eq!(back, events);
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
        let mut back = Vec::new();
        replay(dir.path(), Position::default(), |mut e, _| {
            back.append(&mut e);
            Ok(())
        })
        .expect("replay");
        assert_eq!(back, events);
    }

    #[test]
    fn loaded_segments_are_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = one_record(dir.path(), 0, 1);
        let second = one_record(dir.path(), first.segment, 2);
        remove_before(dir.path(), second.segment).expect("remove");
        assert_eq!(segments(dir.path()).expect("segments"), [second.segment]);
    }
}
