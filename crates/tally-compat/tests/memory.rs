//! Reading a body costs memory in proportion to what Tally reads of it,
//! not to what a sender put around it: fields nobody reads are skipped,
//! never buffered. (A `#[serde(flatten)]` buffered them: 8 MiB of `{}`
//! took over 100 MB, with no key needed.)
//!
//! One test in its own binary, so that the heap it counts serves nothing
//! else at the same time.

use tally_protocol::Limits;

#[global_allocator]
static HEAP: dhat::Alloc = dhat::Alloc;

/// `parts` joined into a string allocated once, at its exact size, so that
/// building a body holds no more than the body.
fn joined(parts: &[&str]) -> String {
    let mut s = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    parts.iter().for_each(|p| s.push_str(p));
    s
}

#[test]
fn fields_nobody_reads_cost_no_memory() {
    let _heap = dhat::Profiler::builder().testing().build();
    let mut junk = String::with_capacity(6 << 20);
    while junk.len() + 3 < junk.capacity() {
        junk.push_str("{},");
    }
    junk.push_str("{}");
    let event = r#"{"event": "x", "distinct_id": "u"}"#;
    let posthog = [
        joined(&[
            r#"{"api_key": "k", "junk": ["#,
            &junk,
            r#"], "batch": ["#,
            event,
            "]}",
        ]),
        joined(&[
            r#"{"event": "x", "distinct_id": "u", "token": "k", "junk": ["#,
            &junk,
            "]}",
        ]),
    ];
    let segment = joined(&[
        r#"{"writeKey": "k", "context": {"ip": ["#,
        &junk,
        r#"]}, "junk": ["#,
        &junk,
        r#"], "batch": []}"#,
    ]);
    let held = dhat::HeapStats::get().curr_bytes;
    let limits = Limits::default();
    for body in &posthog {
        let read = tally_compat::posthog::read(body.as_bytes(), &limits).expect("read");
        assert_eq!((read.key(), read.len()), (Some("k"), 1));
    }
    let read = tally_compat::segment::read(segment.as_bytes(), None, &limits).expect("read");
    assert_eq!(read.key(), Some("k"));
    let peak = dhat::HeapStats::get().max_bytes;
    assert!(
        peak < held + 64 * 1024,
        "reading bodies of {} MB held {} KB more",
        junk.len() >> 20,
        (peak - held) >> 10
    );
}
