//! Files and folders only their owner can read.
//!
//! A data dir holds every event, the ingest keys and the admin token, so on
//! Unix it is made `0700` and the files Tally writes in it `0600`, whatever
//! the umask (the usual `022` would leave them readable by every user of the
//! machine). The folder is what protects: it is made private before any
//! file is written in it, so nothing is readable by others even for a
//! moment, including the files DuckDB makes with the umask's mode (its
//! `.wal` after each checkpoint, its spill folder). A data dir left looser
//! by an older Tally, or by hand, is tightened when it is opened, with a
//! warning. Elsewhere than Unix, folders and files are made as usual.

use std::fs::OpenOptions;
use std::io;
use std::path::Path;

/// The mode of private folders.
#[cfg(unix)]
const DIR_MODE: u32 = 0o700;
/// The mode of private files.
#[cfg(unix)]
const FILE_MODE: u32 = 0o600;

/// Creates `dir` and any missing parents readable by their owner only, or
/// tightens `dir` if it exists and others may read or enter it.
///
/// Only a folder that is empty or already Tally's (it holds an admin token,
/// a DuckDB file or journal segments) is tightened: a folder of other
/// things, such as `--data /tmp`, is left as it is with a warning, since
/// closing it would lock other users out of their own files.
///
/// ```
/// # #[cfg(unix)] {
/// use std::os::unix::fs::PermissionsExt;
/// let parent = tempfile::tempdir()?;
/// let dir = parent.path().join("tally-data");
/// tally_store::owner_only::create_dir(&dir)?;
/// assert_eq!(std::fs::metadata(&dir)?.permissions().mode() & 0o777, 0o700);
/// # }
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn create_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(dir)?;
        let mode = std::fs::metadata(dir)?.permissions().mode() & 0o7777;
        if mode & 0o077 == 0 {
            return Ok(());
        }
        let mode = format!("{mode:o}");
        if is_tallys(dir)? {
            tracing::warn!(dir = %dir.display(), %mode, "The folder was open to other users; it is now its owner's only.");
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DIR_MODE))?;
        } else {
            tracing::warn!(dir = %dir.display(), %mode, "The folder is open to other users and holds other files than Tally's; left as it is.");
        }
        Ok(())
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)
}

/// Whether `dir` is empty or holds what only Tally makes (the file names
/// the embedded store, its journal and the server give them).
#[cfg(unix)]
fn is_tallys(dir: &Path) -> io::Result<bool> {
    let mut empty = true;
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if matches!(&*name, "admin-token" | "tally.duckdb") || name.ends_with(".journal") {
            return Ok(true);
        }
        empty = false;
    }
    Ok(empty)
}

/// Makes the file at `path` readable by its owner only, if it exists (for
/// files made by others, such as DuckDB's).
///
/// ```
/// # #[cfg(unix)] {
/// use std::os::unix::fs::PermissionsExt;
/// let dir = tempfile::tempdir()?;
/// let file = dir.path().join("made-by-someone-else");
/// std::fs::write(&file, "x")?;
/// tally_store::owner_only::restrict(&file)?;
/// assert_eq!(std::fs::metadata(&file)?.permissions().mode() & 0o777, 0o600);
/// tally_store::owner_only::restrict(&dir.path().join("absent"))?;
/// # }
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn restrict(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        match std::fs::set_permissions(path, std::fs::Permissions::from_mode(FILE_MODE)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(())
    }
}

/// Options that create a file readable by its owner only; set the access
/// (write, truncate ...) on them as usual.
///
/// ```
/// # #[cfg(unix)] {
/// use std::os::unix::fs::PermissionsExt;
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("secret");
/// tally_store::owner_only::file_options().write(true).create_new(true).open(&path)?;
/// assert_eq!(std::fs::metadata(&path)?.permissions().mode() & 0o777, 0o600);
/// # }
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn file_options() -> OpenOptions {
    #[cfg_attr(not(unix), expect(unused_mut, reason = "modes are Unix's"))]
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, FILE_MODE);
    options
}
