//! Caps on how many distinct values each dimension of an app's events may
//! take per day, since every value is chosen by whoever holds the app's
//! (public) ingest key and each new one makes new rollup rows.
//!
//! Design:
//! - Per app and per server day (UTC, from the time the server received
//!   the request, not the client's clock), one set of the values seen per
//!   [`Dimension`]. A value already in its set stays as it is; a new one
//!   joins the set while it has room ([`CardinalityLimits`]); beyond that
//!   it is replaced by the literal `(other)` ([`OTHER`]).
//! - Folding rewrites the event itself before it is staged, so the journal,
//!   the stored event, `tally export` and the rollups all hold the same
//!   `(other)`; the event is stored and counted as any other. Each folded
//!   value is counted per dimension ([`Folded`]) for
//!   `tally_values_folded_total`. A client's own `(other)` is kept and
//!   takes no room.
//! - Only today and yesterday are kept: a request received just before
//!   midnight may be folded after one received just after it, and must
//!   not open a third day or reset today's sets. When the clock moves on
//!   by more than a day (or back), the sets start afresh.
//! - Known values are not kept across restarts: the sets start empty, so
//!   the caps hold per run of the server (a restart on the same day lets
//!   up to one more cap of new values in), and per collector when several
//!   share one store. Seeding them from the store was not done because
//!   rollups are keyed by the client's day, not the server's, so the store
//!   cannot say which values came in today.
//! - Caps bound each dimension alone. A rollup row is keyed by several
//!   (version, OS, command, flag ...), so the rows of one day are bounded
//!   by the product of the caps of the dimensions of its kind, not by
//!   their sum.
//!
//! Memory: each kept value costs its bytes plus about 40 bytes of set
//! entry, and its bytes are bounded by the protocol's string limits
//! (`tally_protocol::limits::strings`). With the default caps that is at
//! most about 8 MB per app and day (half of it error locations and
//! dep versions at their longest, a fifth property values), so 16 MB per app. Apps are made by the
//! admin, so their number is bounded too. Lookups are hash lookups with
//! std's randomly keyed SipHash, so crafted values cannot make them slow.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use tally_protocol::{Event, PropertyValue, StoredEvent};
use tally_report::OTHER;
use time::Date;

/// The most distinct values each dimension of one app's events may take
/// per day (of the server's clock, UTC); beyond that, new values become
/// `(other)`. Zero folds every value.
///
/// The defaults are several times what a popular CLI sends in a day: its
/// versions in the field, its commands and flags, the error kinds and crash
/// locations of all those versions, the tools it reports and their
/// versions.
///
/// ```
/// let limits = tally_server::CardinalityLimits::default();
/// assert_eq!(limits.app_versions, 1_000);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardinalityLimits {
    /// Distinct `app_version`s.
    pub app_versions: usize,
    /// Distinct command paths.
    pub commands: usize,
    /// Distinct flag names, over all commands.
    pub flags: usize,
    /// Distinct error kinds.
    pub error_kinds: usize,
    /// Distinct error locations (file:line:column, over all versions).
    pub error_locations: usize,
    /// Distinct OS names.
    pub os: usize,
    /// Distinct CPU architectures.
    pub arch: usize,
    /// Distinct OS versions.
    pub os_versions: usize,
    /// Distinct CI vendors.
    pub ci: usize,
    /// Distinct AI agents.
    pub agents: usize,
    /// Distinct custom event names.
    pub event_names: usize,
    /// Distinct names of tools in `deps`.
    pub dep_names: usize,
    /// Distinct (tool, version) pairs in `deps`.
    pub dep_versions: usize,
    /// Distinct property keys.
    pub property_keys: usize,
    /// Distinct (event name, key, text value) of custom events' token
    /// properties: what the `events` report breaks them down by.
    pub property_values: usize,
}

impl Default for CardinalityLimits {
    fn default() -> Self {
        Self {
            app_versions: 1_000,
            commands: 2_000,
            flags: 2_000,
            error_kinds: 2_000,
            error_locations: 5_000,
            // A few dozen OSes and architectures exist.
            os: 100,
            arch: 100,
            os_versions: 1_000,
            ci: 100,
            agents: 100,
            event_names: 1_000,
            dep_names: 1_000,
            dep_versions: 5_000,
            property_keys: 1_000,
            property_values: 5_000,
        }
    }
}

impl CardinalityLimits {
    fn cap(&self, dimension: Dimension) -> usize {
        match dimension {
            Dimension::AppVersion => self.app_versions,
            Dimension::Command => self.commands,
            Dimension::Flag => self.flags,
            Dimension::ErrorKind => self.error_kinds,
            Dimension::ErrorLocation => self.error_locations,
            Dimension::Os => self.os,
            Dimension::Arch => self.arch,
            Dimension::OsVersion => self.os_versions,
            Dimension::Ci => self.ci,
            Dimension::Agent => self.agents,
            Dimension::EventName => self.event_names,
            Dimension::DepName => self.dep_names,
            Dimension::DepVersion => self.dep_versions,
            Dimension::PropertyKey => self.property_keys,
            Dimension::PropertyValue => self.property_values,
        }
    }
}

/// A field of an event whose values are capped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dimension {
    AppVersion,
    Command,
    Flag,
    ErrorKind,
    ErrorLocation,
    Os,
    Arch,
    OsVersion,
    Ci,
    Agent,
    EventName,
    DepName,
    DepVersion,
    PropertyKey,
    PropertyValue,
}

const DIMENSIONS: usize = 15;

impl Dimension {
    const ALL: [Dimension; DIMENSIONS] = [
        Dimension::AppVersion,
        Dimension::Command,
        Dimension::Flag,
        Dimension::ErrorKind,
        Dimension::ErrorLocation,
        Dimension::Os,
        Dimension::Arch,
        Dimension::OsVersion,
        Dimension::Ci,
        Dimension::Agent,
        Dimension::EventName,
        Dimension::DepName,
        Dimension::DepVersion,
        Dimension::PropertyKey,
        Dimension::PropertyValue,
    ];

    /// The name in the metric's `dimension` label.
    fn as_str(self) -> &'static str {
        match self {
            Dimension::AppVersion => "app_version",
            Dimension::Command => "command",
            Dimension::Flag => "flag",
            Dimension::ErrorKind => "error_kind",
            Dimension::ErrorLocation => "error_location",
            Dimension::Os => "os",
            Dimension::Arch => "arch",
            Dimension::OsVersion => "os_version",
            Dimension::Ci => "ci",
            Dimension::Agent => "agent",
            Dimension::EventName => "event_name",
            Dimension::DepName => "dep_name",
            Dimension::DepVersion => "dep_version",
            Dimension::PropertyKey => "property_key",
            Dimension::PropertyValue => "property_value",
        }
    }
}

/// How many values one call of [`Cardinality::fold`] folded, per
/// dimension.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Folded([u64; DIMENSIONS]);

impl Folded {
    /// The dimensions that had values folded (by their label), with how
    /// many.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        Dimension::ALL
            .into_iter()
            .zip(self.0)
            .filter(|(_, n)| *n > 0)
            .map(|(d, n)| (d.as_str(), n))
    }
}

/// The values each app's events had today and yesterday; shared by the
/// requests of a server (see the module doc).
pub(crate) struct Cardinality {
    limits: CardinalityLimits,
    apps: RwLock<HashMap<Box<str>, Arc<Mutex<Days>>>>,
}

impl Cardinality {
    pub(crate) fn new(limits: CardinalityLimits) -> Self {
        Self {
            limits,
            apps: RwLock::default(),
        }
    }

    /// Folds the values of `events` (all of `app`, received on `day`)
    /// beyond their caps into `(other)`, in place.
    pub(crate) fn fold(&self, app: &str, day: Date, events: &mut [StoredEvent]) -> Folded {
        let days = self.days_of(app);
        let mut days = days.lock().unwrap_or_else(PoisonError::into_inner);
        let mut folder = Folder {
            seen: days.on(day),
            limits: &self.limits,
            folded: Folded::default(),
            pair: String::new(),
        };
        for stored in events {
            folder.event(&mut stored.event);
        }
        folder.folded
    }

    fn days_of(&self, app: &str) -> Arc<Mutex<Days>> {
        let known = self.apps.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(days) = known.get(app) {
            return Arc::clone(days);
        }
        drop(known);
        let mut apps = self.apps.write().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(apps.entry(app.into()).or_default())
    }
}

/// The values seen on one day, one set per [`Dimension`].
#[derive(Default)]
struct Seen([HashSet<Box<str>>; DIMENSIONS]);

/// One app's sets of today and yesterday.
#[derive(Default)]
struct Days {
    today: Option<(Date, Seen)>,
    yesterday: Option<Seen>,
}

impl Days {
    /// The sets of `day`, which becomes today unless it is yesterday.
    fn on(&mut self, day: Date) -> &mut Seen {
        let today = self.today.as_ref().map(|(d, _)| *d);
        if today.is_some_and(|t| t.previous_day() == Some(day)) {
            return self.yesterday.get_or_insert_with(Seen::default);
        }
        if today != Some(day) {
            let moved_on = today.is_some_and(|t| t.next_day() == Some(day));
            let previous = self.today.take().map(|(_, seen)| seen);
            self.yesterday = previous.filter(|_| moved_on);
        }
        &mut self.today.get_or_insert_with(|| (day, Seen::default())).1
    }
}

/// One fold: the day's sets, and what was folded so far.
struct Folder<'a> {
    seen: &'a mut Seen,
    limits: &'a CardinalityLimits,
    folded: Folded,
    /// A reused buffer for a dep's "tool\0version" (NUL is in no value).
    pair: String,
}

impl Folder<'_> {
    fn event(&mut self, e: &mut Event) {
        use Dimension as D;
        self.text(D::AppVersion, &mut e.app_version);
        self.text(D::Command, &mut e.command);
        for flag in &mut e.flags {
            self.text(D::Flag, flag);
        }
        self.text(D::Os, &mut e.os);
        self.text(D::Arch, &mut e.arch);
        self.optional(D::OsVersion, &mut e.os_version);
        self.optional(D::Ci, &mut e.ci);
        self.optional(D::Agent, &mut e.agent);
        self.optional(D::EventName, &mut e.name);
        if let Some(error) = &mut e.error {
            self.text(D::ErrorKind, &mut error.kind);
            self.optional(D::ErrorLocation, &mut error.location);
        }
        if !e.deps.is_empty() {
            let deps = std::mem::take(&mut e.deps);
            e.deps = deps
                .into_iter()
                .map(|(tool, version)| self.dep(tool, version))
                .collect();
        }
        self.properties(e.name.as_deref(), &mut e.properties);
    }

    /// Whether `value` may stay: it is `(other)`, known today, or new with
    /// room left (and then known from now on).
    fn admits(&mut self, dimension: Dimension, value: &str) -> bool {
        let set = &mut self.seen.0[dimension as usize];
        if value == OTHER || set.contains(value) {
            return true;
        }
        if set.len() < self.limits.cap(dimension) {
            set.insert(value.into());
            return true;
        }
        self.folded.0[dimension as usize] += 1;
        false
    }

    fn text(&mut self, dimension: Dimension, value: &mut String) {
        if !self.admits(dimension, value) {
            value.clear();
            value.push_str(OTHER);
        }
    }

    fn optional(&mut self, dimension: Dimension, value: &mut Option<String>) {
        if let Some(value) = value {
            self.text(dimension, value);
        }
    }

    /// A tool beyond its cap becomes `(other)` with version `(other)`; a
    /// known tool's version beyond the cap of pairs becomes `(other)`.
    fn dep(&mut self, tool: String, mut version: String) -> (String, String) {
        if !self.admits(Dimension::DepName, &tool) {
            return (OTHER.into(), OTHER.into());
        }
        let mut pair = std::mem::take(&mut self.pair);
        pair.clear();
        pair.extend([tool.as_str(), "\0", version.as_str()]);
        if !self.admits(Dimension::DepVersion, &pair) {
            version = OTHER.into();
        }
        self.pair = pair;
        (tool, version)
    }

    /// Keys beyond the cap are dropped with their values; `(other)` then
    /// holds how many were. A text value beyond the cap of pairs becomes
    /// `(other)`.
    fn properties(
        &mut self,
        name: Option<&str>,
        properties: &mut std::collections::BTreeMap<String, PropertyValue>,
    ) {
        let mut dropped = 0;
        properties.retain(|key, _| {
            let kept = self.admits(Dimension::PropertyKey, key);
            dropped += i64::from(!kept);
            kept
        });
        // The values a custom event's breakdown counts (tokens, see
        // `tally_protocol::schema::is_token`); a run's properties are never rolled
        // up, and free text is not either.
        if let Some(name) = name {
            let mut pair = std::mem::take(&mut self.pair);
            for (key, value) in properties.iter_mut() {
                if let PropertyValue::String(text) = value
                    && tally_protocol::schema::is_token(text)
                {
                    pair.clear();
                    pair.extend([name, "\0", key.as_str(), "\0", text.as_str()]);
                    if !self.admits(Dimension::PropertyValue, &pair) {
                        *text = OTHER.into();
                    }
                }
            }
            self.pair = pair;
        }
        if dropped > 0 {
            properties.insert(OTHER.into(), PropertyValue::Int(dropped));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use tally_protocol::ErrorInfo;
    use time::macros::{date, datetime};

    use super::*;

    const DAY: Date = date!(2026 - 12 - 01);

    fn event(version: &str, command: &str) -> StoredEvent {
        let at = datetime!(2026-12-01 10:00 UTC);
        StoredEvent {
            event: Event {
                id: uuid::Uuid::nil(),
                timestamp: at,
                app: "mycli".into(),
                app_version: version.into(),
                install_id: uuid::Uuid::nil(),
                name: None,
                command: command.into(),
                flags: Vec::new(),
                exit_code: 0,
                outcome: None,
                duration_ms: 1,
                os: "linux".into(),
                arch: "x86_64".into(),
                os_version: None,
                ci: None,
                agent: None,
                tty: None,
                container: None,
                wsl: None,
                error: None,
                deps: BTreeMap::new(),
                properties: BTreeMap::new(),
                source: tally_protocol::Source::Sdk,
            },
            client_timestamp: at,
            received_at: at,
        }
    }

    fn versions(events: &[StoredEvent]) -> Vec<&str> {
        events
            .iter()
            .map(|e| e.event.app_version.as_str())
            .collect()
    }

    fn limits(each: usize) -> CardinalityLimits {
        CardinalityLimits {
            app_versions: each,
            commands: each,
            flags: each,
            error_kinds: each,
            error_locations: each,
            os: each,
            arch: each,
            os_versions: each,
            ci: each,
            agents: each,
            event_names: each,
            dep_names: each,
            dep_versions: each,
            property_keys: each,
            property_values: each,
        }
    }

    fn folded(f: &Folded) -> Vec<(&'static str, u64)> {
        f.iter().collect()
    }

    #[test]
    fn values_beyond_the_cap_become_other_and_known_ones_stay() {
        let cardinality = Cardinality::new(limits(2));
        let mut events: Vec<StoredEvent> = ["1.0", "1.1", "1.2", "1.0", "1.3", "1.1"]
            .into_iter()
            .map(|v| event(v, "build"))
            .collect();
        let folded_now = cardinality.fold("mycli", DAY, &mut events);
        assert_eq!(
            versions(&events),
            ["1.0", "1.1", OTHER, "1.0", OTHER, "1.1"]
        );
        assert_eq!(folded(&folded_now), [("app_version", 2)]);
        // A later request of the same day knows the same two.
        let mut later = vec![event("1.1", "build"), event("1.4", "build")];
        cardinality.fold("mycli", DAY, &mut later);
        assert_eq!(versions(&later), ["1.1", OTHER]);
    }

    #[test]
    fn every_capped_field_folds() {
        let cardinality = Cardinality::new(limits(0));
        let mut e = event("1.0", "deploy");
        e.event.flags = vec!["--force".into(), "--region".into()];
        e.event.os_version = Some("14.4".into());
        e.event.ci = Some("github-actions".into());
        e.event.agent = Some("claude-code".into());
        e.event.name = Some("cache.hit".into());
        e.event.error = Some(ErrorInfo {
            kind: "io".into(),
            message: "file not found".into(),
            location: Some("src/main.rs:1:1".into()),
        });
        e.event.deps = [("git".to_owned(), "2.43.0".to_owned())].into();
        e.event.properties = [("a".to_owned(), PropertyValue::Bool(true))].into();
        let mut events = vec![e];
        let counts = cardinality.fold("mycli", DAY, &mut events);
        let got = &events[0].event;
        let other = || Some(OTHER.to_owned());
        assert_eq!(
            (got.app_version.as_str(), got.command.as_str()),
            (OTHER, OTHER)
        );
        assert_eq!(got.flags, [OTHER, OTHER]);
        assert_eq!((got.os.as_str(), got.arch.as_str()), (OTHER, OTHER));
        assert_eq!(
            [&got.os_version, &got.ci, &got.agent, &got.name],
            [&other(), &other(), &other(), &other()]
        );
        let error = got.error.as_ref().expect("error");
        assert_eq!((error.kind.as_str(), &error.location), (OTHER, &other()));
        assert_eq!(error.message, "file not found", "messages are not capped");
        assert_eq!(got.deps, [(OTHER.to_owned(), OTHER.to_owned())].into());
        assert_eq!(
            got.properties,
            [(OTHER.to_owned(), PropertyValue::Int(1))].into()
        );
        assert_eq!(counts.iter().map(|(_, n)| n).sum::<u64>(), 14);
        assert_eq!(counts.iter().count(), 13, "all but dep_version: {counts:?}");
    }

    #[test]
    fn text_property_values_beyond_the_cap_become_other() {
        let cardinality = Cardinality::new(CardinalityLimits {
            property_values: 1,
            ..CardinalityLimits::default()
        });
        let mut events: Vec<StoredEvent> = ["disk", "tape", "disk"]
            .into_iter()
            .map(|layer| {
                let mut e = event("1.0", "build");
                e.event.name = Some("cache.hit".into());
                e.event.properties = [
                    ("layer".to_owned(), PropertyValue::String(layer.into())),
                    ("n".to_owned(), PropertyValue::Int(7)),
                ]
                .into();
                e
            })
            .collect();
        let counts = cardinality.fold("mycli", DAY, &mut events);
        let layers: Vec<&PropertyValue> = events
            .iter()
            .map(|e| &e.event.properties["layer"])
            .collect();
        let text = |s: &str| PropertyValue::String(s.into());
        assert_eq!(layers, [&text("disk"), &text(OTHER), &text("disk")]);
        assert_eq!(folded(&counts), [("property_value", 1)]);
        assert_eq!(
            events[1].event.properties["n"],
            PropertyValue::Int(7),
            "numbers stay"
        );
    }

    #[test]
    fn a_known_tool_keeps_its_name_when_its_version_folds() {
        let cardinality = Cardinality::new(CardinalityLimits {
            dep_versions: 1,
            ..CardinalityLimits::default()
        });
        let mut e = event("1.0", "build");
        e.event.deps = [
            ("git".to_owned(), "2.43.0".to_owned()),
            ("node".to_owned(), "22.1.0".to_owned()),
        ]
        .into();
        let mut events = vec![e];
        let counts = cardinality.fold("mycli", DAY, &mut events);
        assert_eq!(
            events[0].event.deps,
            [
                ("git".to_owned(), "2.43.0".to_owned()),
                ("node".to_owned(), OTHER.to_owned())
            ]
            .into()
        );
        assert_eq!(folded(&counts), [("dep_version", 1)]);
    }

    #[test]
    fn a_clients_own_other_takes_no_room() {
        let cardinality = Cardinality::new(limits(1));
        let mut events = vec![event(OTHER, "build"), event("1.0", "build")];
        let counts = cardinality.fold("mycli", DAY, &mut events);
        assert_eq!(versions(&events), [OTHER, "1.0"]);
        assert_eq!(counts, Folded::default());
    }

    #[test]
    fn each_app_has_its_own_caps() {
        let cardinality = Cardinality::new(limits(1));
        let mut mine = vec![event("1.0", "build")];
        let mut theirs = vec![event("2.0", "build")];
        cardinality.fold("mycli", DAY, &mut mine);
        cardinality.fold("othercli", DAY, &mut theirs);
        assert_eq!(
            (versions(&mine), versions(&theirs)),
            (vec!["1.0"], vec!["2.0"])
        );
    }

    #[test]
    fn a_new_day_starts_afresh_and_yesterday_keeps_its_own_sets() {
        let cardinality = Cardinality::new(limits(1));
        let fold = |day: Date, version: &str| {
            let mut events = vec![event(version, "build")];
            cardinality.fold("mycli", day, &mut events);
            events[0].event.app_version.clone()
        };
        let next = DAY.next_day().expect("a next day");
        assert_eq!(fold(DAY, "1.0"), "1.0");
        assert_eq!(fold(next, "1.1"), "1.1", "a new day has room again");
        // A request received just before midnight, folded after midnight:
        // yesterday's set, which leaves today's alone.
        assert_eq!(fold(DAY, "1.0"), "1.0");
        assert_eq!(fold(DAY, "1.2"), OTHER);
        assert_eq!(fold(next, "1.1"), "1.1");
        assert_eq!(fold(next, "1.3"), OTHER);
        // Two days on, yesterday (next) is still known, the day before is gone.
        let after = next.next_day().expect("a day after");
        assert_eq!(fold(after, "1.4"), "1.4");
        assert_eq!(fold(next, "1.1"), "1.1");
        assert_eq!(fold(DAY, "1.0"), "1.0", "an older day starts afresh");
    }
}
