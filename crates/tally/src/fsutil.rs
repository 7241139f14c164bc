//! Small file operations every part of the SDK needs.

use std::io::{self, Write};
use std::path::Path;

/// Writes `bytes` to `path` through a temporary file and a rename, creating
/// the parent dir: concurrent readers see the old or the new file, whole.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_through_tmp(path, bytes, false)
}

/// [`write_atomic`] for a file that holds a secret: readable by its owner
/// only, and synced before it replaces the old one, so a crash never
/// leaves it empty.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_through_tmp(path, bytes, true)
}

fn write_through_tmp(path: &Path, bytes: &[u8], private: bool) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::other("path has no parent"))?;
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::other("path has no file name"))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        uuid::Uuid::new_v4().simple()
    ));
    let result = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        if private {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp)?;
        file.write_all(bytes)?;
        if private {
            file.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        if private && let Ok(dir) = std::fs::File::open(dir) {
            // Not every platform can sync a folder; the rename is then as
            // durable as it gets.
            let _ = dir.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
