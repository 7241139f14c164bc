//! `platforms`: installs and runs per OS, OS version, arch, container and
//! WSL.

use tally_report::{Query, Table};

use super::table::{Column, breakdown};
use super::{Src, read_range};
use crate::{Dim, Error, Group, Kind, Need, Part};

pub(super) fn answer<E: From<Error> + Send>(
    source: Src<'_, E>,
    query: &Query,
) -> Result<Vec<Table>, E> {
    use Part::{Dim as D, Os};
    let tables: [(&str, &[(&str, Column)]); 5] = [
        ("os", &[("os", Column::Os)]),
        (
            "os_version",
            &[
                ("os", Column::Os),
                ("os_version", Column::Text(Dim::OsVersion)),
            ],
        ),
        ("arch", &[("arch", Column::Text(Dim::Arch))]),
        ("container", &[("container", Column::Bool(Dim::Container))]),
        ("wsl", &[("wsl", Column::Bool(Dim::Wsl))]),
    ];
    let need = Need::new(
        Kind::Platform,
        &[
            &[Os],
            &[Os, D(Dim::OsVersion)],
            &[D(Dim::Arch)],
            &[D(Dim::Container)],
            &[D(Dim::Wsl)],
        ],
    );
    let groups: [Vec<Group>; 5] = read_range(source, &need, query)?;
    Ok(tables
        .into_iter()
        .zip(groups)
        .map(|((name, columns), groups)| breakdown(name, groups, columns, query.limit))
        .collect())
}
