//! An app's schema: the custom events and properties its CLI may send,
//! declared by its maintainers, published for its users to read, and
//! enforced by the server on arrival. An app without one takes any
//! well-formed event, as before.
//!
//! ```
//! use tally_protocol::schema::{Checked, Schema};
//! let schema: Schema = serde_json::from_str(r#"{
//!     "events": {"cache.hit": {"properties": {
//!         "layer": {"type": "string", "values": ["memory", "disk"], "report": true},
//!         "size_mb": {"type": "number", "min": 0, "max": 100000}
//!     }}}
//! }"#)?;
//! let mut event: tally_protocol::Event = serde_json::from_str(r#"{
//!     "id": "0195f3a4-6c1e-7cc2-9d61-3f1d6f0b1a01", "timestamp": "2026-11-25T11:59:58Z",
//!     "app": "mycli", "app_version": "1.4.2", "install_id": "6f9619ff-8b86-4d01-b42d-00cf4fc964ff",
//!     "command": "build", "flags": [], "exit_code": 0, "duration_ms": 3, "os": "linux",
//!     "arch": "x86_64", "name": "cache.hit", "properties": {"layer": "tape"}
//! }"#)?;
//! match schema.check(&mut event) {
//!     Checked::Rejected(v) => assert_eq!(v.field, "properties.layer"),
//!     other => panic!("{other:?}"),
//! }
//! # Ok::<(), serde_json::Error>(())
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Event, PropertyValue};

/// What an app's CLI may send beyond the fields every event has.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schema {
    /// What becomes of what the schema does not declare, and of values
    /// outside their declaration.
    #[serde(default)]
    pub undeclared: Undeclared,
    /// Properties the invocation event (one per run) may carry.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, PropertySpec>,
    /// Custom events, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub events: BTreeMap<String, EventSpec>,
}

/// What becomes of an event or property the schema does not allow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Undeclared {
    /// The event is refused, with the field and the reason (the default).
    #[default]
    Reject,
    /// An undeclared event is not stored, an undeclared or invalid
    /// property is left out of its event; both are counted.
    Drop,
}

/// One custom event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventSpec {
    /// What it means, for the published schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The properties it may carry.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, PropertySpec>,
}

/// One property: its type and what values it may take.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PropertySpec {
    /// Its type.
    #[serde(rename = "type")]
    pub kind: PropertyType,
    /// For a string: the values it may take (any, when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    /// For a number: the least value it may take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// For a number: the greatest value it may take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Whether the reports may show its values (the `events` report's
    /// breakdown); a string shown needs `values`, so that no one's free
    /// text ends up in a dashboard.
    #[serde(default)]
    pub report: bool,
    /// What it means, for the published schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The type of a property.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PropertyType {
    /// Text.
    String,
    /// Any number.
    Number,
    /// A whole number.
    Integer,
    /// `true` or `false`.
    Boolean,
}

/// Why (part of) an event is not taken as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The field, e.g. `name` or `properties.layer`.
    pub field: String,
    /// A sentence.
    pub reason: String,
}

/// What [`Schema::check`] made of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// It is taken; under [`Undeclared::Drop`], less the properties named.
    Kept(Vec<Violation>),
    /// Under [`Undeclared::Drop`]: an undeclared event, not stored.
    Dropped(Violation),
    /// Under [`Undeclared::Reject`]: refused.
    Rejected(Violation),
}

impl Schema {
    /// Checks that the schema can be used: only custom events' text and
    /// yes/no properties are shown, a shown string lists its values, a
    /// range is not upside down. The error is a sentence.
    pub fn validate(&self) -> Result<(), String> {
        let specs = self.properties.iter().map(|(k, s)| (None, k, s)).chain(
            self.events
                .iter()
                .flat_map(|(e, spec)| spec.properties.iter().map(move |(k, s)| (Some(e), k, s))),
        );
        for (event, key, spec) in specs {
            let at = match event {
                Some(e) => format!("events.{e:?}.properties.{key}"),
                None => format!("properties.{key}"),
            };
            if spec.report
                && (event.is_none()
                    || !matches!(spec.kind, PropertyType::String | PropertyType::Boolean))
            {
                return Err(format!(
                    "{at}: reports show the text and yes/no properties of custom events only"
                ));
            }
            if spec.min.is_some_and(f64::is_nan) || spec.max.is_some_and(f64::is_nan) {
                return Err(format!("{at}: min and max must be numbers"));
            }
            if spec.report && spec.values.iter().any(|v| !is_token(v)) {
                return Err(format!(
                    "{at}: values shown in reports are tokens (up to 32 letters, digits and -_.:)"
                ));
            }
            if spec.report && spec.kind == PropertyType::String && spec.values.is_empty() {
                return Err(format!(
                    "{at}: a string shown in reports must list its values (or it could show anyone's text)"
                ));
            }
            if let (Some(min), Some(max)) = (spec.min, spec.max)
                && min > max
            {
                return Err(format!("{at}: min ({min}) is above max ({max})"));
            }
            if !spec.values.is_empty() && spec.kind != PropertyType::String {
                return Err(format!("{at}: values are for strings"));
            }
            if (spec.min.is_some() || spec.max.is_some())
                && !matches!(spec.kind, PropertyType::Number | PropertyType::Integer)
            {
                return Err(format!("{at}: min and max are for numbers"));
            }
        }
        Ok(())
    }

    /// The (event name, property) pairs whose values reports may show.
    ///
    /// ```
    /// let schema: tally_protocol::schema::Schema = serde_json::from_str(
    ///     r#"{"events": {"cache.hit": {"properties": {"warm": {"type": "boolean", "report": true}}}}}"#,
    /// )?;
    /// assert_eq!(schema.shown(), [("cache.hit".to_owned(), "warm".to_owned())]);
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn shown(&self) -> Vec<(String, String)> {
        self.events
            .iter()
            .flat_map(|(name, spec)| {
                spec.properties
                    .iter()
                    .filter(|(_, p)| p.report)
                    .map(move |(key, _)| (name.clone(), key.clone()))
            })
            .collect()
    }

    /// The properties events called `name` (`None`: the invocation event)
    /// may carry, if the schema declares such events.
    pub fn properties_of(&self, name: Option<&str>) -> Option<&BTreeMap<String, PropertySpec>> {
        match name {
            None => Some(&self.properties),
            Some(name) => self.events.get(name).map(|e| &e.properties),
        }
    }

    /// Checks `event`, taking out what is dropped: under
    /// [`Undeclared::Drop`], and an invocation's undeclared or invalid
    /// properties always (a run is not refused for one).
    pub fn check(&self, event: &mut Event) -> Checked {
        let Some(declared) = self.properties_of(event.name.as_deref()) else {
            let violation = Violation {
                field: "name".into(),
                reason: format!(
                    "the event {:?} is not in the app's schema",
                    event.name.as_deref().unwrap_or_default()
                ),
            };
            return match self.undeclared {
                Undeclared::Reject => Checked::Rejected(violation),
                Undeclared::Drop => Checked::Dropped(violation),
            };
        };
        let mut dropped = Vec::new();
        for (key, value) in &event.properties {
            let reason = match declared.get(key) {
                None => Some(format!(
                    "the property {key:?} is not in the app's schema for this event"
                )),
                Some(spec) => spec.refuses(value),
            };
            if let Some(reason) = reason {
                let violation = Violation {
                    field: format!("properties.{key}"),
                    reason,
                };
                // A run is never refused for a property: SDKs and the
                // compatible ingest add some of their own (a value flag's
                // choice, a client library's name), and the run's command,
                // exit code and duration are worth keeping without it.
                if self.undeclared == Undeclared::Reject && event.name.is_some() {
                    return Checked::Rejected(violation);
                }
                dropped.push(violation);
            }
        }
        for violation in &dropped {
            let key = violation
                .field
                .strip_prefix("properties.")
                .unwrap_or_default();
            event.properties.remove(key);
        }
        Checked::Kept(dropped)
    }
}

/// Whether a property's text is a token a breakdown may count: at most
/// 32 letters, digits and `-_.:`, as the values a schema lists are
/// (`memory`, `eu-west-1`, `v2`), never a sentence, a path or an address.
///
/// ```
/// assert!(tally_protocol::schema::is_token("eu-west-1"));
/// assert!(!tally_protocol::schema::is_token("cannot open ~/x"));
/// ```
pub fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 32
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

impl PropertySpec {
    /// Why `value` is not one this property may take, if it is not.
    fn refuses(&self, value: &PropertyValue) -> Option<String> {
        let number = match (self.kind, value) {
            (PropertyType::String, PropertyValue::String(s)) => {
                return (!self.values.is_empty() && !self.values.contains(s)).then(|| {
                    format!(
                        "{s:?} is not one of the declared values ({})",
                        self.values.join(", ")
                    )
                });
            }
            (PropertyType::Boolean, PropertyValue::Bool(_)) => return None,
            (PropertyType::Integer, PropertyValue::Int(n)) => *n as f64,
            (PropertyType::Number, PropertyValue::Int(n)) => *n as f64,
            (PropertyType::Number, PropertyValue::Float(x)) => *x,
            (kind, _) => return Some(format!("not {}", kind.with_article())),
        };
        if self.min.is_some_and(|min| number < min) || self.max.is_some_and(|max| number > max) {
            let bound = |b: Option<f64>| b.map_or("any".to_owned(), |b| b.to_string());
            return Some(format!(
                "{number} is outside the declared range ({} to {})",
                bound(self.min),
                bound(self.max)
            ));
        }
        None
    }
}

impl PropertyType {
    fn with_article(self) -> &'static str {
        match self {
            PropertyType::String => "a string",
            PropertyType::Number => "a number",
            PropertyType::Integer => "an integer",
            PropertyType::Boolean => "a boolean",
        }
    }

    /// Its name in a schema.
    pub fn as_str(self) -> &'static str {
        match self {
            PropertyType::String => "string",
            PropertyType::Number => "number",
            PropertyType::Integer => "integer",
            PropertyType::Boolean => "boolean",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: Option<&str>, properties: &[(&str, PropertyValue)]) -> Event {
        let mut e: Event = serde_json::from_str(
            r#"{"id": "0195f3a4-6c1e-7cc2-9d61-3f1d6f0b1a01", "timestamp": "2026-11-25T11:59:58Z",
                "app": "a", "app_version": "1", "install_id": "6f9619ff-8b86-4d01-b42d-00cf4fc964ff",
                "command": "", "flags": [], "exit_code": 0, "duration_ms": 0, "os": "linux", "arch": "x86_64"}"#,
        )
        .expect("event");
        e.name = name.map(str::to_owned);
        e.properties = properties
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        e
    }

    fn schema(undeclared: Undeclared) -> Schema {
        let mut schema: Schema = serde_json::from_value(serde_json::json!({
            "properties": {"profile": {"type": "string", "values": ["dev", "prod"]}},
            "events": {"cache.hit": {"properties": {
                "layer": {"type": "string", "values": ["memory", "disk"], "report": true},
                "size_mb": {"type": "number", "min": 0, "max": 10},
                "count": {"type": "integer"},
                "warm": {"type": "boolean"}
            }}}
        }))
        .expect("schema");
        schema.undeclared = undeclared;
        schema.validate().expect("valid");
        schema
    }

    #[test]
    fn declared_events_and_values_pass() {
        let s = schema(Undeclared::Reject);
        let mut e = event(
            Some("cache.hit"),
            &[
                ("size_mb", 2.5.into()),
                ("count", 3i64.into()),
                ("warm", true.into()),
            ],
        );
        assert_eq!(s.check(&mut e), Checked::Kept(vec![]));
        let mut run = event(None, &[("profile", "dev".into())]);
        assert_eq!(s.check(&mut run), Checked::Kept(vec![]));
    }

    #[test]
    fn each_violation_is_named_with_its_field() {
        let s = schema(Undeclared::Reject);
        let cases = [
            (
                event(Some("cache.miss"), &[]),
                "name",
                "not in the app's schema",
            ),
            (
                event(Some("cache.hit"), &[("layer", "tape".into())]),
                "properties.layer",
                "declared values",
            ),
            (
                event(Some("cache.hit"), &[("user", "bob".into())]),
                "properties.user",
                "not in the app's schema",
            ),
            (
                event(Some("cache.hit"), &[("size_mb", 11i64.into())]),
                "properties.size_mb",
                "outside",
            ),
            (
                event(Some("cache.hit"), &[("count", 1.5.into())]),
                "properties.count",
                "not an integer",
            ),
            (
                event(Some("cache.hit"), &[("warm", "yes".into())]),
                "properties.warm",
                "not a boolean",
            ),
        ];
        for (mut e, field, reason) in cases {
            match s.check(&mut e) {
                Checked::Rejected(v) => {
                    assert_eq!(v.field, field);
                    assert!(v.reason.contains(reason), "{}", v.reason);
                }
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_run_is_kept_without_the_properties_it_may_not_have() {
        let s = schema(Undeclared::Reject);
        let mut run = event(
            None,
            &[("profile", "staging".into()), ("--format", "json".into())],
        );
        match s.check(&mut run) {
            Checked::Kept(dropped) => assert_eq!(dropped.len(), 2),
            other => panic!("{other:?}"),
        }
        assert!(run.properties.is_empty());
    }

    #[test]
    fn dropping_takes_out_what_is_undeclared_and_keeps_the_rest() {
        let s = schema(Undeclared::Drop);
        let mut e = event(
            Some("cache.hit"),
            &[("size_mb", 1i64.into()), ("secret", "x".into())],
        );
        match s.check(&mut e) {
            Checked::Kept(dropped) => assert_eq!(dropped.len(), 1),
            other => panic!("{other:?}"),
        }
        assert_eq!(e.properties.keys().collect::<Vec<_>>(), ["size_mb"]);
        assert!(matches!(
            s.check(&mut event(Some("x"), &[])),
            Checked::Dropped(_)
        ));
    }

    #[test]
    fn a_schema_that_could_show_free_text_is_refused() {
        let shown: Schema = serde_json::from_value(serde_json::json!({
            "events": {"e": {"properties": {"path": {"type": "string", "report": true}}}}
        }))
        .expect("parses");
        assert!(
            shown
                .validate()
                .expect_err("free text")
                .contains("must list its values")
        );
        let shown_run: Schema = serde_json::from_value(serde_json::json!({
            "properties": {"profile": {"type": "string", "values": ["a"], "report": true}}
        }))
        .expect("parses");
        assert!(
            shown_run
                .validate()
                .expect_err("a run's")
                .contains("custom events only")
        );
        let upside_down: Schema = serde_json::from_value(serde_json::json!({
            "properties": {"n": {"type": "number", "min": 5, "max": 1}}
        }))
        .expect("parses");
        assert!(upside_down.validate().is_err());
    }
}
