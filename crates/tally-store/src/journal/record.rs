//! Events in the journal's binary form.
//!
//! A record's payload is its events one after another, each its fields in a
//! fixed order: ids as 16 bytes, timestamps as microseconds since the epoch
//! (the resolution stores keep) and other fixed-size integers little-endian,
//! counts and lengths as LEB128, strings as their length and UTF-8 bytes,
//! an optional value as a `0` byte or a `1` byte and the value. It is about
//! half the size of the event's JSON and a fraction of the work to write,
//! which the request's own thread does (see [`Encoded`]), so the writer only
//! copies bytes.

use std::any::Any;
use std::collections::BTreeMap;

use tally_protocol::{ErrorInfo, Event, Outcome, PropertyValue, Source, StoredEvent};
use tally_rollup::{from_micros, micros};
use uuid::Uuid;

use crate::Prepared;

/// Events in the journal's form, each one's bytes findable on its own, so
/// that a writer can journal just the new events of a batch.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Encoded {
    bytes: Vec<u8>,
    /// Where each event's bytes end.
    ends: Vec<usize>,
}

impl Encoded {
    /// Encodes `events`.
    pub(crate) fn new(events: &[StoredEvent]) -> Self {
        let mut encoded = Self {
            bytes: Vec::with_capacity(events.len() * 256),
            ends: Vec::with_capacity(events.len()),
        };
        for stored in events {
            put_event(&mut encoded.bytes, stored);
            encoded.ends.push(encoded.bytes.len());
        }
        encoded
    }

    /// All the events' bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The bytes of event `i`.
    pub(crate) fn event(&self, i: usize) -> &[u8] {
        let start = i.checked_sub(1).map_or(0, |before| self.ends[before]);
        &self.bytes[start..self.ends[i]]
    }

    /// Adds `other`'s events after these.
    fn extend(&mut self, other: Self) {
        let base = self.bytes.len();
        self.bytes.extend_from_slice(&other.bytes);
        self.ends.extend(other.ends.iter().map(|end| end + base));
    }

    /// Splits off the events from `at` on.
    fn split(&mut self, at: usize) -> Self {
        let base = at.checked_sub(1).map_or(0, |before| self.ends[before]);
        let ends = self
            .ends
            .split_off(at)
            .iter()
            .map(|end| end - base)
            .collect();
        Self {
            bytes: self.bytes.split_off(base),
            ends,
        }
    }
}

/// The embedded store prepares a batch by encoding it, in the request's
/// thread (see [`Store::stage`](crate::Store::stage)).
impl Prepared for Encoded {
    fn append(&mut self, other: Box<dyn Prepared>) -> bool {
        let other: Box<dyn Any> = other;
        match other.downcast::<Encoded>() {
            Ok(other) => {
                self.extend(*other);
                true
            }
            Err(_) => false,
        }
    }

    fn split_off(&mut self, at: usize) -> Box<dyn Prepared> {
        Box::new(self.split(at))
    }
}

/// Why a payload could not be read back.
#[derive(Debug, thiserror::Error)]
#[error("journal record malformed: {0}")]
pub(crate) struct Malformed(&'static str);

/// Reads back every event of a payload; `sourced` when its events end
/// with their source (all but the second format's).
pub(crate) fn decode(payload: &[u8], sourced: bool) -> Result<Vec<StoredEvent>, Malformed> {
    let mut input = Input(payload);
    let mut events = Vec::new();
    while !input.0.is_empty() {
        let mut stored = input.event()?;
        if sourced {
            stored.event.source = match input.byte()? {
                0 => Source::Sdk,
                1 => Source::Gateway,
                _ => return Err(Malformed("unknown source")),
            };
        }
        events.push(stored);
    }
    Ok(events)
}

fn put_event(out: &mut Vec<u8>, stored: &StoredEvent) {
    let e = &stored.event;
    out.extend_from_slice(e.id.as_bytes());
    for t in [e.timestamp, stored.client_timestamp, stored.received_at] {
        out.extend_from_slice(&micros(t).to_le_bytes());
    }
    put_str(out, &e.app);
    put_str(out, &e.app_version);
    out.extend_from_slice(e.install_id.as_bytes());
    put_opt(out, e.name.as_deref(), put_str);
    put_str(out, &e.command);
    put_len(out, e.flags.len());
    for flag in &e.flags {
        put_str(out, flag);
    }
    out.extend_from_slice(&e.exit_code.to_le_bytes());
    put_opt(out, e.outcome.map(Outcome::as_str), put_str);
    out.extend_from_slice(&e.duration_ms.to_le_bytes());
    put_str(out, &e.os);
    put_str(out, &e.arch);
    for text in [&e.os_version, &e.ci, &e.agent] {
        put_opt(out, text.as_deref(), put_str);
    }
    for flag in [e.tty, e.container, e.wsl] {
        put_opt(out, flag, |out, b| out.push(u8::from(b)));
    }
    put_opt(out, e.error.as_ref(), |out, error| {
        put_str(out, &error.kind);
        put_str(out, &error.message);
        put_opt(out, error.location.as_deref(), put_str);
    });
    put_len(out, e.deps.len());
    for (tool, version) in &e.deps {
        put_str(out, tool);
        put_str(out, version);
    }
    put_len(out, e.properties.len());
    for (key, value) in &e.properties {
        put_str(out, key);
        match value {
            PropertyValue::String(s) => {
                out.push(0);
                put_str(out, s);
            }
            PropertyValue::Int(n) => {
                out.push(1);
                out.extend_from_slice(&n.to_le_bytes());
            }
            PropertyValue::Float(x) => {
                out.push(2);
                out.extend_from_slice(&x.to_le_bytes());
            }
            PropertyValue::Bool(b) => {
                out.push(3);
                out.push(u8::from(*b));
            }
        }
    }
    out.push(match e.source {
        Source::Sdk => 0,
        Source::Gateway => 1,
    });
}

fn put_len(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_len(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

fn put_opt<T>(out: &mut Vec<u8>, value: Option<T>, put: impl FnOnce(&mut Vec<u8>, T)) {
    match value {
        None => out.push(0),
        Some(v) => {
            out.push(1);
            put(out, v);
        }
    }
}

/// The rest of a payload being read.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn bytes<const N: usize>(&mut self) -> Result<[u8; N], Malformed> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or(Malformed("cut short"))?;
        self.0 = rest;
        Ok(*head)
    }

    fn byte(&mut self) -> Result<u8, Malformed> {
        Ok(self.bytes::<1>()?[0])
    }

    fn uuid(&mut self) -> Result<Uuid, Malformed> {
        Ok(Uuid::from_bytes(self.bytes()?))
    }

    fn time(&mut self) -> Result<time::OffsetDateTime, Malformed> {
        Ok(from_micros(i64::from_le_bytes(self.bytes()?)))
    }

    fn len(&mut self) -> Result<usize, Malformed> {
        let mut n = 0usize;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= usize::from(b & 0x7f) << shift;
            if b < 0x80 {
                // Every counted item takes a byte at least: a larger count
                // is corruption (and must not size an allocation).
                return (n <= self.0.len())
                    .then_some(n)
                    .ok_or(Malformed("length past the end"));
            }
        }
        Err(Malformed("length too long"))
    }

    fn string(&mut self) -> Result<String, Malformed> {
        let len = self.len()?;
        let (text, rest) = self.0.split_at(len);
        self.0 = rest;
        std::str::from_utf8(text)
            .map(str::to_owned)
            .map_err(|_| Malformed("text not UTF-8"))
    }

    fn opt<T>(
        &mut self,
        read: impl FnOnce(&mut Self) -> Result<T, Malformed>,
    ) -> Result<Option<T>, Malformed> {
        match self.byte()? {
            0 => Ok(None),
            1 => read(self).map(Some),
            _ => Err(Malformed("bad option tag")),
        }
    }

    fn flag(&mut self) -> Result<Option<bool>, Malformed> {
        self.opt(|input| match input.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(Malformed("bad boolean")),
        })
    }

    fn event(&mut self) -> Result<StoredEvent, Malformed> {
        let id = self.uuid()?;
        let timestamp = self.time()?;
        let client_timestamp = self.time()?;
        let received_at = self.time()?;
        let app = self.string()?;
        let app_version = self.string()?;
        let install_id = self.uuid()?;
        let name = self.opt(Self::string)?;
        let command = self.string()?;
        let flags = (0..self.len()?)
            .map(|_| self.string())
            .collect::<Result<_, _>>()?;
        let exit_code = i32::from_le_bytes(self.bytes()?);
        let outcome = match self.opt(Self::string)? {
            None => None,
            Some(name) => Some(Outcome::parse(&name).ok_or(Malformed("unknown outcome"))?),
        };
        let duration_ms = u64::from_le_bytes(self.bytes()?);
        let os = self.string()?;
        let arch = self.string()?;
        let os_version = self.opt(Self::string)?;
        let ci = self.opt(Self::string)?;
        let agent = self.opt(Self::string)?;
        let tty = self.flag()?;
        let container = self.flag()?;
        let wsl = self.flag()?;
        let error = self.opt(|input| {
            Ok(ErrorInfo {
                kind: input.string()?,
                message: input.string()?,
                location: input.opt(Self::string)?,
            })
        })?;
        let deps = (0..self.len()?)
            .map(|_| Ok((self.string()?, self.string()?)))
            .collect::<Result<BTreeMap<_, _>, _>>()?;
        let properties = (0..self.len()?)
            .map(|_| {
                let key = self.string()?;
                let value = match self.byte()? {
                    0 => PropertyValue::String(self.string()?),
                    1 => PropertyValue::Int(i64::from_le_bytes(self.bytes()?)),
                    2 => PropertyValue::Float(f64::from_le_bytes(self.bytes()?)),
                    3 => PropertyValue::Bool(self.byte()? != 0),
                    _ => return Err(Malformed("bad property type")),
                };
                Ok((key, value))
            })
            .collect::<Result<BTreeMap<_, _>, _>>()?;
        Ok(StoredEvent {
            event: Event {
                id,
                timestamp,
                app,
                app_version,
                install_id,
                name,
                command,
                flags,
                exit_code,
                outcome,
                duration_ms,
                os,
                arch,
                os_version,
                ci,
                agent,
                tty,
                container,
                wsl,
                error,
                deps,
                properties,
                source: Source::Sdk,
            },
            client_timestamp,
            received_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_testkit::events::{bare, sample};
    use time::macros::datetime;

    /// Events with every combination of optional fields `sample` makes, and
    /// one with none of them.
    fn events() -> Vec<StoredEvent> {
        let at = datetime!(2026-11-20 10:00:00.123456 UTC);
        let mut events: Vec<_> = (0..28).map(|n| sample(n, "rec", at)).collect();
        events[3].event.source = Source::Gateway;
        let mut bare = bare(99, "rec", at);
        bare.event.command.clear();
        events.push(bare);
        events
    }

    #[test]
    fn events_come_back_field_for_field() {
        let events = events();
        let encoded = Encoded::new(&events);
        assert_eq!(decode(encoded.bytes(), true).expect("decode"), events);
        // Each event's bytes stand on their own.
        for (i, event) in events.iter().enumerate() {
            assert_eq!(
                decode(encoded.event(i), true).expect("decode"),
                std::slice::from_ref(event)
            );
        }
    }

    #[test]
    fn batches_join_and_split_at_event_boundaries() {
        let events = events();
        let mut joined = Encoded::new(&events[..10]);
        joined.extend(Encoded::new(&events[10..]));
        assert_eq!(joined, Encoded::new(&events));
        let tail = joined.split(4);
        assert_eq!(joined, Encoded::new(&events[..4]));
        assert_eq!(tail, Encoded::new(&events[4..]));
        assert_eq!(
            decode(tail.event(0), true).expect("decode"),
            [events[4].clone()]
        );
    }

    /// Regression guard: if a group commit lost the encoding made in the
    /// requests' threads, the commit thread would quietly encode every
    /// event again, and nothing else would fail.
    #[test]
    fn staged_events_keep_their_encoding_through_join_and_split() {
        let events = events();
        let stage = |events: &[StoredEvent]| {
            crate::Staged::prepared(events.to_vec(), Box::new(Encoded::new(events)))
        };
        // Joined as a group commit joins requests: into an empty batch.
        let mut group = crate::Staged::default();
        group.append(stage(&events[..10]));
        group.append(stage(&events[10..]));
        assert_eq!(group.prepared_as::<Encoded>(), Some(&Encoded::new(&events)));
        let tail = group.split_off(4);
        assert_eq!(
            group.prepared_as::<Encoded>(),
            Some(&Encoded::new(&events[..4]))
        );
        assert_eq!(
            tail.prepared_as::<Encoded>(),
            Some(&Encoded::new(&events[4..]))
        );
        // Joined with events staged without an encoding, there is none to
        // trust: the writer makes it.
        group.append(crate::Staged::from(events[..1].to_vec()));
        assert_eq!(group.prepared_as::<Encoded>(), None);
    }

    #[test]
    fn a_payload_cut_anywhere_inside_an_event_is_malformed() {
        let events = events();
        let encoded = Encoded::new(&events[..3]);
        let bytes = encoded.bytes();
        let ends: Vec<usize> = (0..3)
            .map(|i| encoded.event(i).len())
            .scan(0, |at, n| {
                *at += n;
                Some(*at)
            })
            .collect();
        for cut in 1..bytes.len() {
            let decoded = decode(&bytes[..cut], true);
            assert_eq!(decoded.is_ok(), ends.contains(&cut), "cut at {cut}");
        }
    }
}
