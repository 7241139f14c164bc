//! Reading log files: inflated as their first bytes say, a line at a time
//! with a cap on its length, and the identity that tells a rotated file
//! from the next.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;

use anyhow::{Context, Result};

/// `path` (or standard input), inflated if it is gzip or zstd.
pub(super) fn open(path: &PathBuf) -> Result<Box<dyn BufRead>> {
    let raw: Box<dyn Read> = if path.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?)
    };
    let mut buffered = BufReader::with_capacity(1 << 20, raw);
    let magic = buffered
        .fill_buf()?
        .get(..4)
        .map(<[u8]>::to_vec)
        .unwrap_or_default();
    Ok(match compression(&magic) {
        Some(Compression::Gzip) => Box::new(BufReader::with_capacity(
            1 << 20,
            flate2::bufread::MultiGzDecoder::new(buffered),
        )),
        Some(Compression::Zstd) => Box::new(BufReader::with_capacity(
            1 << 20,
            zstd::Decoder::with_buffer(buffered)?,
        )),
        None => Box::new(buffered),
    })
}

/// How a file is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Compression {
    Gzip,
    Zstd,
}

impl Compression {
    /// Its name, as people write it.
    pub(super) fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }
}

/// The compression a file's first bytes name, if any.
pub(super) fn compression(magic: &[u8]) -> Option<Compression> {
    match magic {
        [0x1f, 0x8b, ..] => Some(Compression::Gzip),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Some(Compression::Zstd),
        _ => None,
    }
}

/// What tells one file from the next under the same path: its device and
/// inode.
#[cfg(unix)]
pub(super) fn identity(m: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (m.dev(), m.ino())
}

/// Where inodes are not to be had, a rotation is seen as a truncation.
#[cfg(not(unix))]
pub(super) fn identity(_: &std::fs::Metadata) -> (u64, u64) {
    (0, 0)
}

/// The longest line read; a longer one is malformed, and skipped.
pub(super) const MAX_LINE: u64 = 64 * 1024;

/// What [`read_line`] found.
pub(super) enum Line {
    Whole,
    TooLong,
    End,
}

/// The next line of `reader` into `buf`, reading at most [`MAX_LINE`]
/// bytes of it into memory whatever the file holds.
pub(super) fn read_line(reader: &mut dyn BufRead, buf: &mut Vec<u8>) -> std::io::Result<Line> {
    let n = reader.take(MAX_LINE).read_until(b'\n', buf)?;
    if n == 0 {
        return Ok(Line::End);
    }
    if buf.ends_with(b"\n") || (n as u64) < MAX_LINE {
        return Ok(Line::Whole);
    }
    // Skip the rest of it, a buffer at a time.
    loop {
        let (skip, done) = {
            let chunk = reader.fill_buf()?;
            match chunk.iter().position(|&b| b == b'\n') {
                Some(at) => (at + 1, true),
                None => (chunk.len(), chunk.is_empty()),
            }
        };
        reader.consume(skip);
        if done {
            buf.clear();
            return Ok(Line::TooLong);
        }
    }
}
