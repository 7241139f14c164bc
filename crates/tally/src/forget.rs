//! `telemetry forget`: the server erases what this install sent, the spool
//! goes, and the install starts again under a new id.

use std::io::{self, Write};
use std::time::Duration;

use crate::{Shared, consent};

/// How long the erasure may take: the user asked for it, and is told it
/// is under way. (A server on ClickHouse waits for its deletes.)
const BUDGET: Duration = Duration::from_secs(90);

/// Erases this install's events on the server, deletes the spool and
/// starts a new install id (keeping whether telemetry is on), saying what
/// it did in `out`. If the server cannot be asked or refuses, nothing
/// changes and the error says why, so the user can try again: the secret
/// that proves the install's claim goes with its id.
pub(crate) fn forget(shared: &Shared, out: &mut dyn Write) -> io::Result<()> {
    let dirs = shared
        .dirs
        .as_ref()
        .ok_or_else(|| io::Error::other("no config directory (is HOME set?)"))?;
    let Some(settings) = &shared.settings else {
        let purged = shared.spool().purge()?;
        writeln!(
            out,
            "This install has no id yet, so nothing of it was recorded; deleted {purged} unsent event(s)."
        )?;
        return Ok(());
    };
    let old = settings.install_id;
    let said = match (settings.secret(), &shared.endpoint, &shared.key) {
        (Some(secret), Some(endpoint), Some(key)) => {
            writeln!(out, "Asking {endpoint} to erase install {old} ...")?;
            out.flush()?;
            let erased = crate::send::erase(endpoint, key, &shared.user_agent(), &secret, BUDGET)
                .map_err(|why| {
                    io::Error::other(format!(
                        "erasing this install's events failed, nothing was changed (try again later): {why}"
                    ))
                })?;
            format!("The server erased {erased} event(s) of install {old}.")
        }
        (None, Some(_), Some(_)) => format!(
            "Install {old} has no secret that proves it is this install's (made before installs \
             had one, or its config file was changed), so it cannot ask the server itself: ask the \
             maintainers of {} to erase install {old} (`tally forget --install-id {old}`).",
            shared.app
        ),
        _ => format!("This build sends to no server; install {old} was never sent anywhere."),
    };
    let purged = shared.spool().purge()?;
    let fresh = consent::Settings::new_install(settings.enabled);
    consent::save(&dirs.config_file, &fresh)?;
    writeln!(out, "{said}")?;
    writeln!(
        out,
        "Deleted {purged} unsent event(s). From now on this install has a new id, {}.",
        fresh.install_id
    )
}
