//! The rules an event must meet beyond its JSON shape.

use crate::limits::strings;
use crate::{Event, Invalid, PropertyValue};

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Invalid {
    Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Checks that `name` can name an app: 1 to 64 ASCII letters, digits, `-`,
/// `_` or `.`, starting with a letter or digit.
pub(crate) fn app_name(name: &str) -> Result<(), String> {
    let first_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !first_ok || !rest_ok || name.len() > strings::APP {
        return Err(format!(
            "app name {name:?} must be 1 to {} letters, digits, '-', '_' or '.', starting with a letter or digit",
            strings::APP
        ));
    }
    Ok(())
}

/// Checks one event sent with an ingest key of `app`.
pub(crate) fn event(e: &Event, app: &str) -> Result<(), Invalid> {
    if e.app != app {
        return Err(invalid(
            "app",
            format!("is {:?} but the ingest key belongs to app {app:?}", e.app),
        ));
    }
    text("app_version", &e.app_version, strings::VERSION, Required)?;
    text("command", &e.command, strings::COMMAND, Optional)?;
    if let Some(name) = &e.name {
        text("name", name, strings::EVENT_NAME, Required)?;
    }
    if e.flags.len() > strings::FLAGS {
        return Err(invalid(
            "flags",
            format!("has {} flags, more than {}", e.flags.len(), strings::FLAGS),
        ));
    }
    for (i, flag) in e.flags.iter().enumerate() {
        let field = format!("flags.{i}");
        text(&field, flag, strings::FLAG, Required)?;
        if flag.chars().any(char::is_whitespace) {
            return Err(invalid(field, "is a flag name and cannot contain spaces"));
        }
    }
    text("os", &e.os, strings::PLATFORM, Required)?;
    text("arch", &e.arch, strings::PLATFORM, Required)?;
    let platform = [
        ("os_version", &e.os_version),
        ("ci", &e.ci),
        ("agent", &e.agent),
    ];
    for (field, value) in platform {
        if let Some(value) = value {
            text(field, value, strings::PLATFORM, Required)?;
        }
    }
    if let Some(error) = &e.error {
        text("error.kind", &error.kind, strings::ERROR_KIND, Required)?;
        text(
            "error.message",
            &error.message,
            strings::ERROR_MESSAGE,
            Optional,
        )?;
        if let Some(location) = &error.location {
            text(
                "error.location",
                location,
                strings::ERROR_LOCATION,
                Optional,
            )?;
        }
    }
    map("deps", e.deps.iter().map(|(k, v)| (k, Some(v.as_str()))))?;
    map(
        "properties",
        e.properties.iter().map(|(k, v)| match v {
            PropertyValue::String(s) => (k, Some(s.as_str())),
            _ => (k, None),
        }),
    )?;
    if e.duration_ms > i64::MAX as u64 {
        return Err(invalid("duration_ms", "is out of range"));
    }
    Ok(())
}

#[derive(PartialEq)]
enum Presence {
    Required,
    Optional,
}
use Presence::{Optional, Required};

fn text(field: &str, value: &str, max: usize, presence: Presence) -> Result<(), Invalid> {
    if presence == Required && value.is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if value.len() > max {
        return Err(invalid(
            field,
            format!(
                "is {} bytes long, more than the limit of {max}",
                value.len()
            ),
        ));
    }
    if value.contains('\0') {
        return Err(invalid(field, "contains a NUL character"));
    }
    Ok(())
}

fn map<'a>(
    field: &str,
    entries: impl ExactSizeIterator<Item = (&'a String, Option<&'a str>)>,
) -> Result<(), Invalid> {
    if entries.len() > strings::MAP_ENTRIES {
        return Err(invalid(
            field,
            format!(
                "has {} entries, more than {}",
                entries.len(),
                strings::MAP_ENTRIES
            ),
        ));
    }
    for (key, value) in entries {
        text(field, key, strings::MAP_KEY, Required)?;
        if let Some(value) = value {
            text(
                &format!("{field}.{key}"),
                value,
                strings::MAP_VALUE,
                Optional,
            )?;
        }
    }
    Ok(())
}
