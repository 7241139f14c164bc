//! What a rollup row is keyed by: its [`Kind`], and the kind's own
//! dimensions, each with a name ([`Dim`]).

use std::borrow::Cow;

use tally_protocol::{Event, Outcome, PropertyValue, Source};
use tally_report::Env;

/// What a rollup row is broken down by, besides day, version, OS and env.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Command path and outcome.
    Command,
    /// Command path and one flag name.
    Flag,
    /// Error kind, location and the command that hit it (events with an
    /// error only).
    Error,
    /// OS version, arch, container, WSL.
    Platform,
    /// CI vendor, AI agent, TTY.
    Environment,
    /// Tool and tool version (one row per dependency).
    Dep,
    /// A custom event's name (custom events only).
    Event,
    /// A custom event's name, and one of its text or yes/no properties
    /// with its value (one row per property).
    EventProperty,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 8] = [
        Kind::Command,
        Kind::Flag,
        Kind::Error,
        Kind::Platform,
        Kind::Environment,
        Kind::Dep,
        Kind::Event,
        Kind::EventProperty,
    ];

    /// The stored name.
    ///
    /// ```
    /// use tally_rollup::Kind;
    /// assert_eq!(Kind::parse(Kind::Dep.as_str()), Some(Kind::Dep));
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Command => "command",
            Kind::Flag => "flag",
            Kind::Error => "error",
            Kind::Platform => "platform",
            Kind::Environment => "environment",
            Kind::Dep => "dep",
            Kind::Event => "event",
            Kind::EventProperty => "event_property",
        }
    }

    /// The kind stored as `name`.
    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// The kind's own dimensions, in the order of their slots.
    pub const fn dims(self) -> &'static [Dim] {
        match self {
            Kind::Command => &[Dim::Command, Dim::Outcome],
            Kind::Flag => &[Dim::Command, Dim::Flag],
            Kind::Error => &[Dim::ErrorKind, Dim::ErrorLocation, Dim::ErrorCommand],
            Kind::Platform => &[Dim::OsVersion, Dim::Arch, Dim::Container, Dim::Wsl],
            Kind::Environment => &[Dim::Ci, Dim::Agent, Dim::Tty],
            Kind::Dep => &[Dim::Tool, Dim::ToolVersion],
            Kind::Event => &[Dim::EventName],
            Kind::EventProperty => &[Dim::EventName, Dim::Property, Dim::Value],
        }
    }

    /// A row of this kind with `values` in their dimensions' slots.
    fn row<const N: usize>(self, values: [(Dim, Option<&str>); N]) -> (Kind, Dims<&str>) {
        let mut dims = [None; 4];
        for (dim, value) in values {
            debug_assert!(self.dims().contains(&dim), "{dim:?} is not of {self:?}");
            dims[dim.slot()] = value;
        }
        (self, dims)
    }
}

/// A dimension of one kind's rows, besides the day, version, OS and
/// environment every row has. Booleans are stored as "true" and "false".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dim {
    /// The command path ([`Kind::Command`] and [`Kind::Flag`]).
    Command,
    /// The outcome reports show, see [`outcome_of`] ([`Kind::Command`]).
    Outcome,
    /// One flag name ([`Kind::Flag`]).
    Flag,
    /// The error's kind ([`Kind::Error`]).
    ErrorKind,
    /// Where the error happened, if the SDK said ([`Kind::Error`]).
    ErrorLocation,
    /// The command that hit the error ([`Kind::Error`]; none in rows
    /// rolled up before Tally kept it).
    ErrorCommand,
    /// The OS version ([`Kind::Platform`]).
    OsVersion,
    /// The CPU architecture ([`Kind::Platform`]).
    Arch,
    /// Whether the CLI ran in a container ([`Kind::Platform`]).
    Container,
    /// Whether the CLI ran under WSL ([`Kind::Platform`]).
    Wsl,
    /// The CI vendor ([`Kind::Environment`]).
    Ci,
    /// The AI agent ([`Kind::Environment`]).
    Agent,
    /// Whether stdout was a terminal ([`Kind::Environment`]).
    Tty,
    /// A tool the CLI depends on ([`Kind::Dep`]).
    Tool,
    /// That tool's version ([`Kind::Dep`]).
    ToolVersion,
    /// A custom event's name ([`Kind::Event`], [`Kind::EventProperty`]).
    EventName,
    /// A property's key ([`Kind::EventProperty`]).
    Property,
    /// A property's value, as text ([`Kind::EventProperty`]).
    Value,
}

impl Dim {
    /// Where the dimension is kept in [`Dims`]: the stored columns d1 to d4
    /// are slots 0 to 3, shared by the kinds.
    ///
    /// ```
    /// use tally_rollup::{Dim, Kind};
    /// assert_eq!(Kind::Platform.dims()[Dim::Arch.slot()], Dim::Arch);
    /// ```
    pub const fn slot(self) -> usize {
        match self {
            Dim::Command
            | Dim::ErrorKind
            | Dim::OsVersion
            | Dim::Ci
            | Dim::Tool
            | Dim::EventName => 0,
            Dim::Outcome
            | Dim::Flag
            | Dim::ErrorLocation
            | Dim::Arch
            | Dim::Agent
            | Dim::ToolVersion
            | Dim::Property => 1,
            Dim::Container | Dim::Tty | Dim::Value | Dim::ErrorCommand => 2,
            Dim::Wsl => 3,
        }
    }
}

/// A row's own dimensions by [`Dim::slot`]; `None` where the event had no
/// value (and past the kind's last dimension).
pub type Dims<T> = [Option<T>; 4];

/// The key of a rollup row (with the app and kind it belongs to). Keys made
/// at ingest borrow from the events; keys read back own their text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key<'a> {
    /// The app.
    pub app: Cow<'a, str>,
    /// The kind of row.
    pub kind: Kind,
    /// The UTC day, see [`day_of`](crate::day_of).
    pub day: i32,
    /// The CLI version.
    pub version: Cow<'a, str>,
    /// The OS.
    pub os: Cow<'a, str>,
    /// Who ran the CLI.
    pub env: Env,
    /// What saw the runs: the SDK or a gateway's log.
    pub source: Source,
    /// The kind's own dimensions.
    pub dims: Dims<Cow<'a, str>>,
}

impl Key<'_> {
    /// The value of one of the row's dimensions, if it has one.
    pub fn dim(&self, dim: Dim) -> Option<&str> {
        self.dims[dim.slot()].as_deref()
    }
}

/// The environment of an event: an agent wins over CI.
pub fn env_of(event: &Event) -> Env {
    if event.agent.is_some() {
        Env::Agent
    } else if event.ci.is_some() {
        Env::Ci
    } else {
        Env::Human
    }
}

/// The outcome reports show: the SDK's, or one read off the exit code.
pub fn outcome_of(event: &Event) -> Outcome {
    event.outcome.unwrap_or(if event.exit_code == 0 {
        Outcome::Success
    } else {
        Outcome::Failure
    })
}

/// The rollup rows an event counts in: each kind with its own dimensions.
/// A custom event counts in its name's row and one row per yes/no
/// property and per text property whose value is a token
/// ([`tally_protocol::schema::is_token`]); numbers and free text are not broken down, and free
/// text never goes into the long-kept daily counts. An invocation counts
/// in all the others.
pub fn keys_of(event: &Event) -> Vec<(Kind, Dims<&str>)> {
    let flag = |b: Option<bool>| b.map(|b| if b { "true" } else { "false" });
    if let Some(name) = event.name.as_deref() {
        let mut keys = vec![Kind::Event.row([(Dim::EventName, Some(name))])];
        for (key, value) in &event.properties {
            let value = match value {
                PropertyValue::String(s) if tally_protocol::schema::is_token(s) => s.as_str(),
                PropertyValue::Bool(b) => flag(Some(*b)).unwrap_or_default(),
                _ => continue,
            };
            keys.push(Kind::EventProperty.row([
                (Dim::EventName, Some(name)),
                (Dim::Property, Some(key.as_str())),
                (Dim::Value, Some(value)),
            ]));
        }
        return keys;
    }
    let command = Some(event.command.as_str());
    let mut keys = vec![
        Kind::Command.row([
            (Dim::Command, command),
            (Dim::Outcome, Some(outcome_of(event).as_str())),
        ]),
        Kind::Platform.row([
            (Dim::OsVersion, event.os_version.as_deref()),
            (Dim::Arch, Some(event.arch.as_str())),
            (Dim::Container, flag(event.container)),
            (Dim::Wsl, flag(event.wsl)),
        ]),
        Kind::Environment.row([
            (Dim::Ci, event.ci.as_deref()),
            (Dim::Agent, event.agent.as_deref()),
            (Dim::Tty, flag(event.tty)),
        ]),
    ];
    for (i, f) in event.flags.iter().enumerate() {
        // A flag given twice counts once for the run.
        if !event.flags[..i].contains(f) {
            keys.push(Kind::Flag.row([(Dim::Command, command), (Dim::Flag, Some(f.as_str()))]));
        }
    }
    if let Some(error) = &event.error {
        keys.push(Kind::Error.row([
            (Dim::ErrorKind, Some(error.kind.as_str())),
            (Dim::ErrorLocation, error.location.as_deref()),
            (Dim::ErrorCommand, command),
        ]));
    }
    for (tool, version) in &event.deps {
        keys.push(Kind::Dep.row([
            (Dim::Tool, Some(tool.as_str())),
            (Dim::ToolVersion, Some(version.as_str())),
        ]));
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_lists_its_dimensions_in_slot_order() {
        for kind in Kind::ALL {
            for (i, dim) in kind.dims().iter().enumerate() {
                assert_eq!(dim.slot(), i, "{kind:?} {dim:?}");
            }
        }
    }
}
