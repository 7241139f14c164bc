//! The outbox holds each stored event once, whatever the store called it,
//! across restarts, torn writes and segment cuts.

use std::time::Duration;

use tally_forward::{Cursor, Outbox, Outgoing};
use tally_protocol::StoredEvent;
use tally_testkit::events::sample;
use time::OffsetDateTime;
use time::macros::datetime;

const AT: OffsetDateTime = datetime!(2026-11-25 12:00 UTC);

fn micros(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1000) as i64
}

/// Events `ns`, presented (see tally_store::dedupe) an hour before `AT`.
fn events(ns: impl IntoIterator<Item = u32>) -> Vec<StoredEvent> {
    ns.into_iter().map(|n| sample(n, "mycli", AT)).collect()
}

fn outgoing(events: &[StoredEvent]) -> Vec<Outgoing> {
    events.iter().map(Outgoing::of).collect()
}

/// Appends events `ns` as the store judged them (`new`), and says how
/// many the outbox took.
fn append(outbox: &Outbox, ns: impl IntoIterator<Item = u32>, new: bool) -> usize {
    let batch = events(ns);
    outbox
        .append(&outgoing(&batch), &vec![new; batch.len()])
        .expect("append")
}

/// The numbers of every event in `outbox`, in order.
fn all(outbox: &Outbox) -> Vec<u32> {
    let mut cursor = Cursor::default();
    let mut ns = Vec::new();
    loop {
        let (got, next) = outbox.read(cursor, 1000, Duration::ZERO).expect("read");
        if got.is_empty() && next == cursor {
            return ns;
        }
        ns.extend(got.iter().map(|e| e.event.id.as_u128() as u32));
        cursor = next;
    }
}

/// Memory complete from before the events' times: a new outbox made then.
fn before() -> i64 {
    micros(AT - time::Duration::days(1))
}

#[test]
fn an_event_is_in_the_outbox_once() {
    let dir = tempfile::tempdir().expect("dir");
    let outbox = Outbox::open(dir.path(), 1000, before()).expect("open");
    assert_eq!(append(&outbox, [1, 2], true), 2);
    // A retried request: the store calls 1 and 2 duplicates, 3 is new and
    // sent twice in it.
    let retry = events([1, 2, 3, 3]);
    let taken = outbox
        .append(&outgoing(&retry), &[false, false, true, false])
        .expect("append");
    assert_eq!(taken, 1);
    assert_eq!(all(&outbox), [1, 2, 3]);
}

/// The crash window: stored, and the server died before the outbox took
/// it. The retry is a duplicate to the store, and the outbox takes it.
#[test]
fn a_stored_event_the_outbox_never_took_is_taken_on_its_retry() {
    let dir = tempfile::tempdir().expect("dir");
    let outbox = Outbox::open(dir.path(), 1000, before()).expect("open");
    assert_eq!(append(&outbox, [7], false), 1);
    // An event from before forwarding began is not forwarded when retried.
    let dir = tempfile::tempdir().expect("dir");
    let late = Outbox::open(dir.path(), 1000, micros(AT)).expect("open");
    assert_eq!(append(&late, [7], false), 0);
    assert_eq!(append(&late, [8], true), 1);
}

#[test]
fn a_restart_remembers_what_it_holds_and_cuts_a_torn_line() {
    let dir = tempfile::tempdir().expect("dir");
    {
        let outbox = Outbox::open(dir.path(), 1000, before()).expect("open");
        append(&outbox, [1, 2], true);
    }
    // A crash in the middle of the next write.
    let segment = dir.path().join(format!("{:016}.ndjson", 0));
    let mut text = std::fs::read(&segment).expect("segment");
    text.extend_from_slice(br#"{"id": "0195f3a4-6c1e-7cc2-9d61-0000000"#);
    std::fs::write(&segment, text).expect("torn");
    let outbox = Outbox::open(dir.path(), 1000, micros(AT)).expect("reopen");
    assert_eq!(all(&outbox), [1, 2]);
    assert_eq!(append(&outbox, [1, 2], false), 0);
    assert_eq!(append(&outbox, [3], true), 1);
    assert_eq!(all(&outbox), [1, 2, 3]);
}

#[test]
fn segments_are_cut_and_deleted_only_once_every_reader_is_past_them() {
    let dir = tempfile::tempdir().expect("dir");
    let outbox = Outbox::open_sized(dir.path(), 100_000, before(), 4096).expect("open");
    let reader = outbox.register(Cursor::default());
    for start in (0..400).step_by(10) {
        append(&outbox, start..start + 10, true);
    }
    let segments = || {
        std::fs::read_dir(dir.path())
            .expect("dir")
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".ndjson"))
            })
            .count() as u64
    };
    let cut = outbox.end().segment;
    assert!(cut >= 10, "cut into {cut} segments");
    // The reader is at the start: nothing is deleted.
    assert_eq!(segments(), cut + 1);
    assert_eq!(all(&outbox), (0..400).collect::<Vec<_>>());
    // Read to the end of a finished segment, a reader is moved on to where
    // the next event will be, and waits there (it spun before).
    let at_cut = Cursor {
        segment: cut - 1,
        offset: std::fs::metadata(dir.path().join(format!("{:016}.ndjson", cut - 1)))
            .expect("segment")
            .len(),
    };
    let (none, next) = outbox.read(at_cut, 10, Duration::ZERO).expect("read");
    assert!(none.is_empty());
    assert_eq!(next.segment, cut);
    // Once it is at the end, the next cut deletes all but the last two.
    outbox.advance(reader, outbox.end());
    append(&outbox, 400..440, true);
    assert!(segments() <= 3, "{} segments left", segments());
    // A restart still knows the ids of the last two segments.
    drop(outbox);
    let outbox = Outbox::open_sized(dir.path(), 100_000, micros(AT), 4096).expect("reopen");
    assert_eq!(append(&outbox, [439], false), 0);
    // Memory is complete past the deleted segments' events: a later event
    // the outbox never had is taken once, on a duplicate too.
    let later = [sample(1000, "mycli", AT + time::Duration::hours(2))];
    for taken in [1, 0] {
        assert_eq!(
            outbox.append(&outgoing(&later), &[false]).expect("append"),
            taken
        );
    }
}

/// Regression: ids were remembered before the write, so a write that met a
/// full disk kept the events out of the outbox for good (their retry was
/// "held"), and its torn bytes spoiled the line after them.
#[cfg(unix)]
#[test]
fn a_write_that_meets_a_full_disk_leaves_nothing_behind() {
    let Some(disk) = tally_testkit::disk::Tmpfs::mount("1m") else {
        return;
    };
    let dir = disk.path().join("outbox");
    let outbox = Outbox::open(&dir, 1000, before()).expect("open");
    append(&outbox, [1], true);
    let filler = disk.fill_but(600);
    let many = events(2..40);
    let refused = outbox.append(&outgoing(&many), &vec![true; many.len()]);
    assert!(refused.is_err(), "{refused:?}");
    std::fs::remove_file(filler).expect("room again");
    // The retry: duplicates to the store, never held by the outbox.
    assert_eq!(append(&outbox, 2..40, false), 38);
    assert_eq!(all(&outbox), (1..40).collect::<Vec<_>>());
    drop(outbox);
    let reopened = Outbox::open(&dir, 1000, before()).expect("reopen");
    assert_eq!(all(&reopened), (1..40).collect::<Vec<_>>());
}
