//! Property tests over the batch decoder: whatever the bytes, it answers
//! with a batch or an error, never a panic, and never invents events.

use proptest::prelude::*;
use tally_protocol::{Limits, StoredEvent, clock, decode_batch};

use super::{NOW, batch, full_event};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_batch(&body, "mycli", NOW, &Limits::default());
    }

    #[test]
    fn mutated_batches_account_for_every_event(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        count in 1usize..6,
    ) {
        let mut body = batch((0..count as u32).map(full_event).collect());
        for (at, byte) in flips {
            let i = at.index(body.len());
            body[i] = byte;
        }
        if let Ok(decoded) = decode_batch(&body, "mycli", NOW, &Limits::default()) {
            prop_assert_eq!(decoded.events.len() + decoded.rejected.len(), count);
            prop_assert_eq!(decoded.events.len(), decoded.client_timestamps.len());
        }
    }
}

/// Any time RFC 3339 can write: years 0 to 9999, offsets to ±23:59.
fn any_time() -> impl Strategy<Value = time::OffsetDateTime> {
    let edges = prop_oneof![
        Just(time::macros::datetime!(0000-01-01 0:00 +23:59)),
        Just(time::macros::datetime!(9999-12-31 23:59:59.999999999 -23:59)),
        Just(NOW),
    ];
    let anywhere = (0i32..=9999, 1u16..=365, 0u32..86_400, -1439i32..=1439).prop_map(
        |(year, day, second, minutes)| {
            let date = time::Date::from_ordinal_date(year, day).expect("day 1..=365 exists");
            let time = time::Time::from_hms(
                (second / 3600) as u8,
                (second / 60 % 60) as u8,
                (second % 60) as u8,
            )
            .expect("valid time");
            let offset = time::UtcOffset::from_hms((minutes / 60) as i8, (minutes % 60) as i8, 0)
                .expect("valid offset");
            date.with_time(time).assume_offset(offset)
        },
    );
    // Near the server's clock too, where most of the accepting happens.
    let near = (-400i64 * 86_400..400 * 86_400).prop_map(|s| NOW + time::Duration::seconds(s));
    prop_oneof![edges, anywhere, near]
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .expect("years 0..=9999 and whole-minute offsets are RFC 3339")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    /// Whatever the pair of client times, decoding answers without a panic,
    /// and what it accepts every store can hold and every export can write.
    #[test]
    fn any_pair_of_client_times_decodes_to_storable_times(
        sent_at in any_time(),
        timestamp in any_time(),
    ) {
        let mut event = full_event(1);
        event["timestamp"] = serde_json::json!(rfc3339(timestamp));
        let body = serde_json::to_vec(
            &serde_json::json!({"sent_at": rfc3339(sent_at), "events": [event]}),
        ).expect("json");
        let limits = Limits::default();
        let Ok(decoded) = decode_batch(&body, "mycli", NOW, &limits) else {
            prop_assert!(sent_at < clock::EARLIEST || sent_at >= clock::END);
            return Ok(());
        };
        for (event, client) in decoded.events.into_iter().zip(decoded.client_timestamps) {
            for t in [event.timestamp, client] {
                prop_assert!((clock::EARLIEST..clock::END).contains(&t), "{t}");
                prop_assert_eq!(t.offset(), time::UtcOffset::UTC);
            }
            prop_assert!(event.timestamp <= NOW + limits.max_future);
            prop_assert!(event.timestamp >= NOW - limits.max_age);
            let stored = StoredEvent { event, client_timestamp: client, received_at: NOW };
            prop_assert!(serde_json::to_string(&stored).is_ok());
        }
    }
}
