//! `--follow`: one log read as it grows, across its rotations.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::FileRun;
use super::input::{MAX_LINE, compression, identity};

/// How often a file read to its end is looked at again.
const POLL: Duration = Duration::from_millis(200);
/// How long a file renamed away is still read after the last line came:
/// the server writes to it until it is told to reopen its log (nginx's
/// USR1 in logrotate's `postrotate`), which can take seconds.
const DRAIN: Duration = Duration::from_secs(3);
/// Lines read between looks at the path while catching up, so that a
/// copy-and-truncate is seen before the reading runs into what is written
/// after it.
const LOOK_EVERY: u64 = 10_000;
/// The first bytes of a file kept (as read) to tell it, copied and
/// truncated and grown again past where the reading was, from itself
/// grown.
const HEAD: usize = 256;

/// The file being followed.
struct Followed {
    file: BufReader<File>,
    /// The device and inode of what was opened.
    identity: (u64, u64),
    /// Bytes read, to the end of the last whole line.
    position: u64,
    /// Lines read.
    number: u64,
    /// Its first bytes, as many as were read (up to [`HEAD`]).
    head: Vec<u8>,
    /// In a line too long to read: the rest of it, up to its newline, is
    /// skipped.
    skipping: bool,
}

/// What happened to the file at the path since it was last looked at.
enum Change {
    None,
    /// Another file stands at the path now (or none yet).
    Rotated,
    /// The file was cut shorter, or cut and written again from its start.
    Truncated,
}

impl Followed {
    fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        // The identity of what was opened, not of what the path names a
        // moment later: a rotation in between would go unseen.
        let metadata = file
            .metadata()
            .with_context(|| format!("reading {}", path.display()))?;
        Ok(Self {
            file: BufReader::new(file),
            identity: identity(&metadata),
            position: 0,
            number: 0,
            head: Vec::new(),
            skipping: false,
        })
    }

    /// Reads from the start again.
    fn restart(&mut self) -> Result<()> {
        self.file.seek(SeekFrom::Start(0))?;
        (self.position, self.number, self.skipping) = (0, 0, false);
        self.head.clear();
        Ok(())
    }

    /// Looks at the path again, once this file is read to its end.
    fn change(&mut self, path: &Path) -> Result<Change> {
        // Between a rename and the new file's making, nothing is there.
        let Ok(now) = std::fs::metadata(path) else {
            return Ok(Change::None);
        };
        if identity(&now) != self.identity {
            return Ok(Change::Rotated);
        }
        if now.len() < self.position {
            return Ok(Change::Truncated);
        }
        // As long as where the reading was, or longer: the same file
        // still starts with what was read of it.
        let mut start = Vec::with_capacity(self.head.len());
        File::open(path)
            .and_then(|f| f.take(self.head.len() as u64).read_to_end(&mut start))
            .with_context(|| format!("reading {}", path.display()))?;
        Ok(if start == self.head {
            Change::None
        } else {
            Change::Truncated
        })
    }
}

impl FileRun<'_, '_> {
    /// Reads `path` as it grows, forever: at its end, what was read is
    /// stored and said, and the path is looked at again; a new file under
    /// it (rotated away) is read once the old one is read to its end, and
    /// a file cut shorter or cut and written anew (copied and truncated)
    /// from its start. A line is only read once its newline is there; one
    /// a rotation cut short is counted as malformed.
    pub(super) fn follow(&mut self, path: &Path) -> Result<()> {
        let mut followed = Followed::open(path)?;
        if let Some(compressed) = compression(followed.file.fill_buf()?) {
            bail!(
                "--follow reads a log as it is written, and {} is {}-compressed: import it without --follow",
                path.display(),
                compressed.name()
            );
        }
        // Since a rotation was seen: when the old file last grew.
        let mut rotated: Option<Instant> = None;
        let mut said = None;
        let mut buf = Vec::new();
        loop {
            let n = followed
                .file
                .by_ref()
                .take(MAX_LINE + 1 - buf.len() as u64)
                .read_until(b'\n', &mut buf)
                .with_context(|| format!("reading {}", path.display()))?;
            if n > 0 {
                let before = followed.number;
                self.followed_bytes(&mut followed, &mut buf, path)?;
                if let Some(grew) = &mut rotated {
                    *grew = Instant::now();
                } else if followed.number / LOOK_EVERY > before / LOOK_EVERY {
                    self.look(&mut followed, &mut buf, path, &mut rotated)?;
                }
                continue;
            }
            if rotated.is_some_and(|grew| grew.elapsed() >= DRAIN) {
                // The old file is read to its end: on to the new one.
                self.cut_short(&mut followed, &mut buf, path);
                followed = Followed::open(path)?;
                self.seen = super::Occurrences::default();
                rotated = None;
                continue;
            }
            self.settle()?;
            if said != Some(self.tally.imported) {
                println!(
                    "following {}: {} requests imported, {} malformed lines",
                    path.display(),
                    self.tally.imported,
                    self.tally.bad
                );
                said = Some(self.tally.imported);
            }
            std::thread::sleep(POLL);
            if rotated.is_none() {
                self.look(&mut followed, &mut buf, path, &mut rotated)?;
            }
        }
    }

    /// Looks at the path again: a rotation is noted (what the server
    /// still writes to the old file is read first), a truncation read
    /// anew from the start, its repeats counted anew.
    fn look(
        &mut self,
        followed: &mut Followed,
        buf: &mut Vec<u8>,
        path: &Path,
        rotated: &mut Option<Instant>,
    ) -> Result<()> {
        match followed.change(path)? {
            Change::None => {}
            Change::Rotated => *rotated = Some(Instant::now()),
            Change::Truncated => {
                self.cut_short(followed, buf, path);
                followed.restart()?;
                self.seen = super::Occurrences::default();
            }
        }
        Ok(())
    }

    /// Takes what a read added to `buf`: a whole line, a line too long
    /// (counted, and its rest skipped), or half a line, kept for its rest.
    fn followed_bytes(&mut self, f: &mut Followed, buf: &mut Vec<u8>, path: &Path) -> Result<()> {
        let whole = buf.ends_with(b"\n");
        if !whole && (buf.len() as u64) <= MAX_LINE {
            return Ok(());
        }
        f.position += buf.len() as u64;
        let kept = buf.len().min(HEAD - f.head.len());
        f.head.extend_from_slice(&buf[..kept]);
        if f.skipping {
            f.skipping = !whole;
        } else if whole {
            f.number += 1;
            self.take(buf, path, f.number)?;
        } else {
            f.number += 1;
            self.tally.lines += 1;
            self.bad(path, f.number, "longer than 64 KiB");
            f.skipping = true;
        }
        buf.clear();
        Ok(())
    }

    /// A line the file's end cut short for good (a rotation, a truncation):
    /// counted as malformed.
    fn cut_short(&mut self, f: &mut Followed, buf: &mut Vec<u8>, path: &Path) {
        if !buf.is_empty() && !f.skipping {
            f.number += 1;
            self.tally.lines += 1;
            self.bad(path, f.number, "cut short by a rotation (no newline)");
        }
        buf.clear();
    }
}
