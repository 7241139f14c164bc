//! Property tests over the batch decoder: whatever the bytes, it answers
//! with a batch or an error, never a panic, and never invents events.

use proptest::prelude::*;
use tally_protocol::{Limits, decode_batch};

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
