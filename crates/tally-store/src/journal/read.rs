//! Reading the journal back: its records after a position, in order.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use tally_protocol::StoredEvent;

use super::{
    HEADER, MAGIC, MAGIC_NDJSON, MAGIC_UNSOURCED, MAX_RECORD, Position, checksum, io_error, record,
    segment_path, segments,
};
use crate::StoreError;

/// Calls `each` with every record after `from`, in order, and the position
/// where it ends. A record cut short ends its segment.
pub(crate) fn replay(
    dir: &Path,
    from: Position,
    mut each: impl FnMut(Vec<StoredEvent>, Position) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    records(dir, from, |stored| {
        let events = stored
            .decode()
            .map_err(|e| StoreError::Corrupt(format!("journal {}: {e}", stored.path.display())))?;
        each(events, stored.end)
    })
}

/// Where the last record after `from` ends, or `from` if none does. A
/// writer starts after its segment, so that it never writes over a record
/// that is not loaded yet (which a store that could not load its journal
/// at open, on a full disk, still holds).
pub(crate) fn end(dir: &Path, from: Position) -> Result<Position, StoreError> {
    let mut end = from;
    records(dir, from, |stored| {
        end = stored.end;
        Ok(())
    })?;
    Ok(end)
}

/// One intact record, read back.
struct Stored<'a> {
    path: &'a Path,
    format: Format,
    payload: &'a [u8],
    end: Position,
}

/// The formats of segments this Tally reads, by their magic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// The first: NDJSON records.
    Ndjson,
    /// The second: binary records, without the events' source.
    Unsourced,
    /// This one's.
    Binary,
}

impl Stored<'_> {
    fn decode(&self) -> Result<Vec<StoredEvent>, String> {
        match self.format {
            Format::Ndjson => self
                .payload
                .split(|&b| b == b'\n')
                .filter(|line| !line.is_empty())
                .map(serde_json::from_slice)
                .collect::<Result<Vec<StoredEvent>, _>>()
                .map_err(|e| e.to_string()),
            Format::Unsourced => record::decode(self.payload, false).map_err(|e| e.to_string()),
            Format::Binary => record::decode(self.payload, true).map_err(|e| e.to_string()),
        }
    }
}

/// Calls `each` with every intact record after `from`, in order.
fn records(
    dir: &Path,
    from: Position,
    mut each: impl FnMut(Stored<'_>) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    for segment in segments(dir)? {
        if segment < from.segment {
            continue;
        }
        let path = segment_path(dir, segment);
        let file = File::open(&path).map_err(|e| io_error("opening", &path, e))?;
        let size = file
            .metadata()
            .map_err(|e| io_error("reading", &path, e))?
            .len();
        let mut reader = BufReader::new(file);
        let mut magic = [0u8; MAGIC.len()];
        // A segment cut short before its magic was synced holds no record.
        if !read_full(&mut reader, &mut magic).map_err(|e| io_error("reading", &path, e))? {
            continue;
        }
        let format = match &magic {
            MAGIC => Format::Binary,
            MAGIC_UNSOURCED => Format::Unsourced,
            MAGIC_NDJSON => Format::Ndjson,
            // Made by a writer that stopped before it was synced.
            [0, 0, 0, 0, 0, 0, 0, 0] => continue,
            _ => {
                return Err(StoreError::Corrupt(format!(
                    "journal segment {} is not of a format this Tally reads; \
                     load it with the Tally that wrote it",
                    path.display()
                )));
            }
        };
        let mut offset = MAGIC.len() as u64;
        let mut payload = Vec::new();
        loop {
            let mut header = [0u8; HEADER];
            // The first format's checksums are of the payload alone.
            let number = (format != Format::Ndjson).then_some(segment);
            let left = size.saturating_sub(offset + HEADER as u64);
            match read_record(&mut reader, number, left, &mut header, &mut payload) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => return Err(io_error("reading", &path, e)),
            }
            offset += (HEADER + payload.len()) as u64;
            let end = Position { segment, offset };
            if end <= from {
                continue;
            }
            each(Stored {
                path: &path,
                format,
                payload: &payload,
                end,
            })?;
        }
    }
    Ok(())
}

/// Reads one whole, intact record of segment `number`, whose file has
/// `left` bytes after the record's header, into `payload`; false at the end
/// of the segment: where the file or its records end (zeros, or the records
/// of its last use), or at a record cut short. A length read from what is
/// left of a last use (event text, chosen by clients) is never allocated
/// beyond what the file holds.
fn read_record(
    reader: &mut impl Read,
    number: Option<u64>,
    left: u64,
    header: &mut [u8; HEADER],
    payload: &mut Vec<u8>,
) -> io::Result<bool> {
    if !read_full(reader, header)? {
        return Ok(false);
    }
    let [l0, l1, l2, l3, c0, c1, c2, c3] = *header;
    let len = u32::from_le_bytes([l0, l1, l2, l3]);
    if len == 0 || len > MAX_RECORD || u64::from(len) > left {
        return Ok(false);
    }
    payload.resize(len as usize, 0);
    if !read_full(reader, payload)? {
        return Ok(false);
    }
    let crc = number.map_or_else(|| crc32fast::hash(payload), |n| checksum(n, payload));
    Ok(crc == u32::from_le_bytes([c0, c1, c2, c3]))
}

/// Fills `buf`; false if the input ends first.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    match reader.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}
