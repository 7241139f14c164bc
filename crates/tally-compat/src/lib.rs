//! PostHog's and Segment's capture formats, read as Tally events.
//!
//! Many CLIs already call PostHog or Segment. With this crate a Tally
//! server answers their clients on the same paths, so such a CLI switches
//! to an endpoint its maintainers own by changing one host name. Each
//! message becomes a Tally [`Event`](tally_protocol::Event), judged by the
//! same rules as Tally's own ([`tally_protocol::admit`]); the mapping, field
//! by field, is `docs/compat.md`.
//!
//! Reading a request takes two steps, because both formats may carry the
//! key in the body: [`posthog::read`] or [`segment::read`] finds the key and
//! the messages, and once the server knows the key's app, the request's
//! `decode` maps the messages for that [`Target`]. Neither does I/O.
//!
//! ```
//! use tally_compat::{posthog, Target};
//! use tally_protocol::Limits;
//!
//! let body = br#"{"api_key": "tk_1", "batch": [{"event": "invocation",
//!     "distinct_id": "6f9619ff-8b86-4d01-b42d-00cf4fc964ff",
//!     "uuid": "0195f3a4-6c1e-7cc2-9d61-3f1d6f0b1a01", "timestamp": "2026-11-25T11:59:58Z",
//!     "properties": {"command": "deploy", "exit_code": 1, "$os": "Mac OS X", "app_version": "1.4.2"}}]}"#;
//! let request = posthog::read(body, &Limits::default())?;
//! assert_eq!(request.key(), Some("tk_1"));
//! let target = Target { app: "mycli", salt: "s3cret", invocation_event: "invocation" };
//! let now = time::macros::datetime!(2026-11-25 12:00 UTC);
//! let decoded = request.decode(&target, now, &Limits::default());
//! let event = &decoded.batch.events[0];
//! assert_eq!((event.command.as_str(), event.exit_code, event.os.as_str()), ("deploy", 1, "macos"));
//! assert_eq!(event.name, None);
//! # Ok::<(), tally_protocol::BatchError>(())
//! ```

mod mapping;
pub mod posthog;
pub mod segment;

pub use mapping::{event_id, install_id};

/// The app a request's key belongs to, and what the mapping needs of it.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The app's name: every event's `app`.
    pub app: &'a str,
    /// The app's secret salt: a user id that is not a UUID (it could be an
    /// e-mail) is stored only as a keyed hash of it ([`install_id`]).
    pub salt: &'a str,
    /// The event name that describes an invocation of the CLI: such events
    /// fill the invocation's fields from their properties, so the reports
    /// count them; any other name is a custom event.
    pub invocation_event: &'a str,
}

/// A request's messages as Tally events.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// The valid events and the rejected ones, as `/v1/batch` has them.
    pub batch: tally_protocol::DecodedBatch,
    /// Messages accepted and not stored, by design (Segment's `identify`,
    /// `group` and `alias`, PostHog's `$identify` and `$set`: they carry a
    /// person's traits, never CLI usage).
    pub ignored: usize,
}

#[cfg(test)]
mod tests;
