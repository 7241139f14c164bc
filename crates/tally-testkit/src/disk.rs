//! A full disk, for real: a tmpfs of a fixed size, filled by a file but for
//! a little room. Mounting one needs root, which CI has; elsewhere the
//! tests that need it say so on stderr and pass.
//!
//! ```no_run
//! use tally_testkit::disk::Tmpfs;
//! let Some(disk) = Tmpfs::mount("1m") else { return };
//! let filler = disk.fill_but(4096);
//! // ... writes to disk.path() now meet a full disk ...
//! std::fs::remove_file(filler).unwrap(); // room again
//! ```

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs of a fixed size, unmounted on drop.
pub struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    /// Mounts one of `size` (as `mount -o size=` takes it); `None`, said on
    /// stderr, where that needs a root the test does not have.
    pub fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().expect("tempdir");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("run mount");
        if !mounted.status.success() {
            eprintln!(
                "skipped: mounting a tmpfs needs root: {}",
                String::from_utf8_lossy(&mounted.stderr).trim()
            );
            return None;
        }
        Some(Self(dir))
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        self.0.path()
    }

    /// Fills it with a file, then frees `left_free` bytes of it (rounded
    /// down to whole pages, as tmpfs counts them); returns the file, whose
    /// removal makes room.
    pub fn fill_but(&self, left_free: u64) -> PathBuf {
        const PAGE: u64 = 4096;
        let path = self.path().join("filler");
        let mut filler = File::create(&path).expect("filler");
        while filler.write_all(&[0; PAGE as usize]).is_ok() {}
        let len = filler.metadata().expect("filler's size").len() / PAGE * PAGE;
        let free = left_free.div_ceil(PAGE) * PAGE;
        filler
            .set_len(len.saturating_sub(free))
            .expect("free a little");
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}
