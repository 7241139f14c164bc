//! Erasing one install from ClickHouse (see
//! [`crate::Store::forget_install`]).
//!
//! Deletes are mutations, which ClickHouse runs behind; each step waits
//! for them, so what is gone is gone when the erasure returns. The rollups
//! of the install's whole days are deleted and rolled up again from the
//! events left, with the views' own queries, from the events received
//! before the delete began: an event received before it but inserted
//! after it (a group commit in flight, milliseconds) is counted in its
//! day's rollups twice, as `docs/scaling.md` says.
//!
//! An erasure is written down (`erasures_pending`) before it deletes
//! anything and crossed out when it is done, so one cut short (a 503, a
//! crash) is finished by the next erasure of the app: its days are rolled
//! up again from what is left.

use uuid::Uuid;

use super::http::{Http, quote};
use super::installs::Installs;
use super::layout::Layout;
use super::schema::{gateway_durations_select, rollups_select, wait_for_mutations};
use crate::StoreError;

/// Erases `install` of each of `apps`; returns the raw events erased, or
/// `None` if none of them ever held it.
pub(super) fn forget_install(
    http: &Http,
    layout: Layout,
    apps: &[&str],
    install: Uuid,
) -> Result<Option<u64>, StoreError> {
    let mut known = false;
    let mut erased = 0;
    for name in apps {
        let app = quote(name);
        finish_pending(http, layout, &app)?;
        // Retention goes by the day events were received, the rollups by
        // the day they count: only days from the first one received on
        // are whole, and can be rolled up again.
        let first = first_received_day(http, &app)?;
        // Before its events go: they may carry numbers no longer recorded.
        let keys = layout.installs.keys_of(http, &app, install)?;
        let whose = format!("app = {app} AND install_id = toUUID('{install}')");
        let rows = http.rows(&format!(
            "SELECT toString(day) AS day, uniqExact(id) AS n FROM events WHERE {whose} GROUP BY day"
        ))?;
        erased += rows.iter().filter_map(|r| r["n"].as_u64()).sum::<u64>();
        let days: Vec<&str> = rows
            .iter()
            .filter_map(|r| r["day"].as_str())
            .filter(|d| first.as_deref().is_some_and(|first| *d >= first))
            .collect();
        if !rows.is_empty() {
            known = true;
            let pending = serde_json::json!({"app": name, "install_id": install, "days": days});
            http.insert("erasures_pending", format!("{pending}\n").as_bytes())?;
            http.execute(&format!("ALTER TABLE events DELETE WHERE {whose}"))?;
            roll_up_again(http, layout, &app, &days)?;
        }
        known |= leave_install_sets(http, layout.installs, &app, &keys, first.as_deref())?;
        cross_out(http, layout.installs, &app, install)?;
    }
    Ok(known.then_some(erased))
}

/// The first day `app` (quoted) has a raw event received on.
fn first_received_day(http: &Http, app: &str) -> Result<Option<String>, StoreError> {
    let rows = http.rows(&format!(
        "SELECT count() AS n, toString(min(rday)) AS first FROM events WHERE app = {app}"
    ))?;
    Ok(rows
        .first()
        .filter(|r| r["n"].as_u64() != Some(0))
        .and_then(|r| r["first"].as_str().map(str::to_owned)))
}

/// Finishes the erasures of `app` (quoted) that were cut short.
fn finish_pending(http: &Http, layout: Layout, app: &str) -> Result<(), StoreError> {
    let pending = http.rows(&format!(
        "SELECT toString(install_id) AS install, days FROM erasures_pending WHERE app = {app}"
    ))?;
    for row in pending {
        let Some(install) = row["install"].as_str().and_then(|s| s.parse::<Uuid>().ok()) else {
            continue;
        };
        let days: Vec<&str> = row["days"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d.as_str())
            .collect();
        let keys = layout.installs.keys_of(http, app, install)?;
        http.execute(&format!(
            "ALTER TABLE events DELETE WHERE app = {app} AND install_id = toUUID('{install}')"
        ))?;
        roll_up_again(http, layout, app, &days)?;
        let first = first_received_day(http, app)?;
        leave_install_sets(http, layout.installs, app, &keys, first.as_deref())?;
        cross_out(http, layout.installs, app, install)?;
    }
    Ok(())
}

/// Deletes the rollups of `days` (`YYYY-MM-DD`) of `app` (quoted) and
/// rolls them up again from the events received before.
fn roll_up_again(http: &Http, layout: Layout, app: &str, days: &[&str]) -> Result<(), StoreError> {
    if days.is_empty() {
        return wait_for_mutations(http);
    }
    let in_days = format!(
        "app = {app} AND day IN ({})",
        days.iter()
            .map(|d| format!("toDate({})", quote(d)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    // Events received from now on are rolled up by the views, into parts
    // the delete does not touch.
    let before = tally_rollup::micros(time::OffsetDateTime::now_utc());
    http.execute(&format!("ALTER TABLE rollups DELETE WHERE {in_days}"))?;
    wait_for_mutations(http)?;
    let of_days = format!("{in_days} AND received_at_us < {before}");
    for select in [
        rollups_select(&of_days, layout),
        gateway_durations_select(&of_days, layout),
    ] {
        http.execute(&format!("INSERT INTO rollups {select}"))?;
    }
    Ok(())
}

/// Crosses the erasure of `install` of `app` (quoted) out, and forgets
/// its install numbers, which nothing holds any longer (last, so that an
/// erasure cut short still finds them).
fn cross_out(http: &Http, installs: Installs, app: &str, install: Uuid) -> Result<(), StoreError> {
    if installs == Installs::Numbers {
        http.execute(&format!(
            "ALTER TABLE install_numbers DELETE WHERE app = {app} AND install_id = toUUID('{install}')"
        ))?;
    }
    http.execute(&format!(
        "ALTER TABLE erasures_pending DELETE WHERE app = {app} AND install_id = toUUID('{install}')"
    ))?;
    wait_for_mutations(http)
}

/// Takes the install of `keys` out of the install sets of the rollup rows of `app`
/// (quoted) on days before `first` (every day when the app has no raw
/// event left), whose events are gone and cannot be rolled up again; says
/// whether any row held it.
fn leave_install_sets(
    http: &Http,
    installs: Installs,
    app: &str,
    keys: &[u64],
    first: Option<&str>,
) -> Result<bool, StoreError> {
    if keys.is_empty() {
        return Ok(false);
    }
    let before = first.map_or_else(String::new, |first| {
        format!(" AND day < toDate({})", quote(first))
    });
    let holding = format!("app = {app}{before} AND {}", installs.holds_any(keys));
    let held = http.rows(&format!("SELECT count() AS n FROM rollups WHERE {holding}"))?;
    if held.first().and_then(|r| r["n"].as_u64()).unwrap_or(0) == 0 {
        return Ok(false);
    }
    // Rows without the install, then the rows with it gone: a delete
    // of the rows that hold it leaves the new ones, and 18.16 cannot
    // UPDATE a column of aggregate states.
    http.execute(&format!(
        "INSERT INTO rollups SELECT app, kind, day, version, os, env, d1, d2, d3, d4, \
         runs, ok, crashes, first_us, last_us, {}, durations FROM rollups WHERE {holding}",
        installs.without(keys)
    ))?;
    http.execute(&format!("ALTER TABLE rollups DELETE WHERE {holding}"))?;
    wait_for_mutations(http)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreSpec;
    use tally_testkit::clickhouse::LocalServer;
    use tally_testkit::events::sample;

    /// An erasure cut short after it deleted the rollups of the install's
    /// days is finished by the app's next erasure: the days are rolled up
    /// again, and the reports count the events left.
    #[test]
    fn an_erasure_cut_short_is_finished_by_the_next() {
        let server = LocalServer::start();
        let url = server.store_url("cut");
        let store = StoreSpec::new(std::path::Path::new("unused"), Some(&url))
            .open()
            .expect("open");
        let http = Http::new(&super::super::http::Target::parse(&url, None).expect("url"))
            .expect("connects");
        let at = time::OffsetDateTime::now_utc() - time::Duration::hours(2);
        let (gone, kept, other) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        let events: Vec<_> = [gone, gone, kept, kept, kept, other]
            .into_iter()
            .enumerate()
            .map(|(n, install)| {
                // The install erased next ran on another day, which its
                // own erasure rolls up again.
                let when = if install == other {
                    at - time::Duration::days(1)
                } else {
                    at
                };
                let mut e = sample(n as u32, "cut", when);
                e.event.name = None;
                e.event.install_id = install;
                e
            })
            .collect();
        let mut writer = store.writer().expect("writer");
        writer.insert(&mut store.stage(events)).expect("insert");
        // Whole days only: the rollups, not the raw events of today.
        let since = (at - time::Duration::days(2)).date().to_string();
        let until = (at + time::Duration::days(1)).date().to_string();
        let runs = || -> i64 {
            let params = [("app", "cut"), ("since", &*since), ("until", &*until)]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            let query =
                tally_report::Query::from_params(tally_report::ReportName::Commands, &params)
                    .expect("query");
            let report = store.report(&query).expect("report");
            report.tables[0]
                .rows
                .iter()
                .map(|r| match r[1] {
                    tally_report::Cell::Int(n) => n,
                    _ => 0,
                })
                .sum()
        };
        assert_eq!(runs(), 6);
        // The first erasure wrote itself down, deleted the events and the
        // day's rollups, and stopped there.
        let day = at.date().to_string();
        let pending = serde_json::json!({"app": "cut", "install_id": gone, "days": [day]});
        http.insert("erasures_pending", format!("{pending}\n").as_bytes())
            .expect("pending");
        http.execute(&format!(
            "ALTER TABLE events DELETE WHERE install_id = toUUID('{gone}')"
        ))
        .expect("delete events");
        http.execute(&format!(
            "ALTER TABLE rollups DELETE WHERE app = 'cut' AND day = toDate('{day}')"
        ))
        .expect("delete rollups");
        wait_for_mutations(&http).expect("mutations");
        assert_eq!(runs(), 1, "the day's rollups are gone");
        assert_eq!(
            store.forget_install(&["cut"], other).expect("next erasure"),
            Some(1)
        );
        assert_eq!(runs(), 3, "the install kept: its runs are counted again");
        let left = http
            .rows("SELECT count() AS n FROM erasures_pending")
            .expect("pending");
        assert_eq!(left[0]["n"].as_u64(), Some(0), "both crossed out");
    }
}
