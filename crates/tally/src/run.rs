//! One recorded run: from start to the event in the spool.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Once, Weak};
use std::time::Instant;

use tally_protocol::{ErrorInfo, Event, Outcome, PropertyValue, strings};

use crate::consent::{self, Source};
use crate::{Shared, deliver};

/// The run in progress, for the panic hook and the signal thread.
static CURRENT: Mutex<Option<Weak<Active>>> = Mutex::new(None);
static HOOKS: Once = Once::new();

/// A run being recorded. End it with [`Run::finish`], [`Run::fail`] or
/// [`Run::interrupted`]; a panic ends it as a crash by itself, and dropping
/// it unfinished records a success (exit code 0).
///
/// When telemetry is off every method does nothing.
#[must_use = "a run records nothing until it is finished"]
pub struct Run {
    active: Option<Arc<Active>>,
}

pub(crate) struct Active {
    shared: Arc<Shared>,
    started: Instant,
    event: Mutex<Option<Event>>,
    marker: Mutex<Option<(PathBuf, File)>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Run {
    fn off() -> Self {
        Self { active: None }
    }

    pub(crate) fn start(
        shared: &Arc<Shared>,
        command: &str,
        flags: Vec<String>,
        properties: BTreeMap<String, PropertyValue>,
    ) -> Self {
        if !shared.consent.enabled {
            if let (Source::FirstRun(path), Some(_)) = (&shared.consent.source, &shared.dirs) {
                first_run(shared, path);
            }
            return Self::off();
        }
        let (Some(settings), Some(dirs)) = (&shared.settings, &shared.dirs) else {
            return Self::off();
        };
        let running = dirs.cache.join("running");
        recover_killed(shared, &running);
        let context = shared.context();
        let event = Event {
            id: uuid::Uuid::now_v7(),
            timestamp: time::OffsetDateTime::now_utc(),
            app: shared.app.clone(),
            app_version: shared.version.clone(),
            install_id: settings.install_id,
            name: None,
            command: command.to_owned(),
            flags: flag_names(flags),
            // What a later run reports if this one vanishes (SIGKILL, OOM).
            exit_code: 137,
            outcome: Some(Outcome::Killed),
            duration_ms: 0,
            os: context.os.clone(),
            arch: context.arch.clone(),
            os_version: context.os_version.clone(),
            ci: context.ci.clone(),
            agent: context.agent.clone(),
            tty: Some(context.tty),
            container: Some(context.container),
            wsl: Some(context.wsl),
            error: None,
            deps: BTreeMap::new(),
            properties,
            source: tally_protocol::Source::Sdk,
        };
        let active = Arc::new(Active {
            shared: Arc::clone(shared),
            started: Instant::now(),
            event: Mutex::new(Some(event)),
            marker: Mutex::new(None),
        });
        // Hooks first, marker second: once a marker exists, a signal or a
        // panic must find this run.
        *lock(&CURRENT) = Some(Arc::downgrade(&active));
        install_hooks(shared.catch_interrupts);
        if let Some(event) = lock(&active.event).as_ref() {
            *lock(&active.marker) = write_marker(&running, event);
        }
        Self {
            active: Some(active),
        }
    }

    /// Adds a custom property (string, integer, float or bool) to the event.
    ///
    /// ```
    /// # let telemetry = tally::Tally::builder("doc-example", "1.0.0").enabled(false).build();
    /// let run = telemetry.start("build", &[]);
    /// run.property("targets", 3);
    /// run.finish(0);
    /// ```
    pub fn property(&self, key: &str, value: impl Into<PropertyValue>) {
        self.with_event(|e| {
            if e.properties.len() < strings::MAP_ENTRIES && key.len() <= strings::MAP_KEY {
                let value = match value.into() {
                    PropertyValue::String(s) => {
                        PropertyValue::String(truncate(s, strings::MAP_VALUE))
                    }
                    other => other,
                };
                e.properties.insert(key.to_owned(), value);
            }
        });
    }

    /// Records a custom event during this run, e.g. a cache hit, with a few
    /// typed properties. It shares the run's context and command and is sent
    /// with the run's own event.
    ///
    /// ```
    /// # let telemetry = tally::Tally::builder("doc-example", "1.0.0").enabled(false).build();
    /// let run = telemetry.start("build", &[]);
    /// run.track("cache.hit", [("entries", 120.into()), ("warm", true.into())]);
    /// run.finish(0);
    /// ```
    pub fn track<'k>(
        &self,
        name: &str,
        properties: impl IntoIterator<Item = (&'k str, PropertyValue)>,
    ) {
        let Some(active) = &self.active else { return };
        let Some(mut event) = lock(&active.event).clone() else {
            return;
        };
        event.id = uuid::Uuid::now_v7();
        event.timestamp = time::OffsetDateTime::now_utc();
        event.name = Some(truncate(name.to_owned(), strings::EVENT_NAME));
        event.exit_code = 0;
        event.outcome = None;
        event.duration_ms = 0;
        event.properties = properties
            .into_iter()
            .filter(|(k, _)| k.len() <= strings::MAP_KEY)
            .take(strings::MAP_ENTRIES)
            .map(|(k, v)| (k.to_owned(), bounded(v)))
            .collect();
        active.shared.record(&event);
    }

    /// Records the version of a tool the CLI depends on, e.g.
    /// `run.dependency("git", &["--version"])`. Runs the tool only when its
    /// version is not cached (for a day), and gives up after a second.
    pub fn dependency(&self, tool: &str, args: &[&str]) {
        let Some(active) = &self.active else { return };
        let cache = active.shared.dirs.as_ref().map(|d| d.cache.as_path());
        if let Some(version) = crate::tools::version(cache, tool, args) {
            self.with_event(|e| {
                if e.deps.len() < strings::MAP_ENTRIES {
                    e.deps.insert(tool.to_owned(), version);
                }
            });
        }
    }

    fn with_event(&self, f: impl FnOnce(&mut Event)) {
        if let Some(active) = &self.active
            && let Some(event) = lock(&active.event).as_mut()
        {
            f(event);
        }
    }

    /// Ends the run with `exit_code`: a success when it is 0, a failure
    /// otherwise.
    pub fn finish(mut self, exit_code: i32) {
        let outcome = if exit_code == 0 {
            Outcome::Success
        } else {
            Outcome::Failure
        };
        if let Some(active) = self.active.take() {
            active.end(exit_code, outcome, None);
        }
    }

    /// Ends the run as a failure with an error `kind` (a short, stable name
    /// such as "io" or "http.timeout") and a message, scrubbed before it is
    /// stored.
    pub fn fail(mut self, exit_code: i32, kind: &str, message: &str) {
        if let Some(active) = self.active.take() {
            let error = ErrorInfo {
                kind: truncate(kind.to_owned(), strings::ERROR_KIND),
                message: message.to_owned(),
                location: None,
            };
            active.end(exit_code, Outcome::Failure, Some(error));
        }
    }

    /// Ends the run as interrupted (exit code 130), for CLIs that handle
    /// Ctrl-C themselves.
    pub fn interrupted(mut self) {
        if let Some(active) = self.active.take() {
            active.end(130, Outcome::Interrupted, None);
        }
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if let Some(active) = self.active.take() {
            active.end(0, Outcome::Success, None);
        }
    }
}

impl Active {
    /// Finalizes the event once (later calls do nothing): spool it, drop the
    /// running marker, start the flusher.
    fn end(&self, exit_code: i32, outcome: Outcome, error: Option<ErrorInfo>) {
        let Some(mut event) = lock(&self.event).take() else {
            return;
        };
        let shared = &self.shared;
        event.exit_code = exit_code;
        event.outcome = Some(outcome);
        event.duration_ms = self.started.elapsed().as_millis() as u64;
        event.error = error.map(|e| {
            let scrubber = shared.scrubber();
            ErrorInfo {
                kind: e.kind,
                message: truncate(scrubber.scrub(&e.message), strings::ERROR_MESSAGE),
                location: e
                    .location
                    .map(|l| truncate(scrubber.scrub(&l), strings::ERROR_LOCATION)),
            }
        });
        shared.record(&event);
        if let Some((path, file)) = lock(&self.marker).take() {
            let _ = std::fs::remove_file(path);
            drop(file);
        }
        deliver::start_flusher(shared);
    }
}

/// The first run: keep the decision (telemetry on, a new install id), then
/// tell the user. When the config cannot be written the notice is not
/// shown either: telemetry stays off, quietly, as an unwritable config dir
/// means.
fn first_run(shared: &Shared, path: &Path) {
    let settings = consent::Settings::new_install(true);
    if consent::save(path, &settings).is_ok() {
        let _ = writeln!(std::io::stderr(), "{}", shared.notice);
    }
}

/// Writes the running marker: the event as a vanished run would report it,
/// locked for as long as this process lives.
fn write_marker(dir: &Path, event: &Event) -> Option<(PathBuf, File)> {
    std::fs::create_dir_all(dir).ok()?;
    let tmp = dir.join(format!(".{}.tmp", event.id));
    let path = dir.join(format!("{}.json", event.id));
    let mut file = File::create(&tmp).ok()?;
    // The lock is what tells a later run that this one is still alive; the
    // kernel drops it however the process ends.
    file.try_lock().ok()?;
    // One write: serde_json writes token by token, a syscall each.
    let json = serde_json::to_vec(event).ok()?;
    file.write_all(&json).ok()?;
    std::fs::rename(&tmp, &path).ok()?;
    Some((path, file))
}

/// Turns the markers of runs that died without a trace into "killed" events.
fn recover_killed(shared: &Shared, dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let Ok(file) = File::open(&path) else {
            continue;
        };
        if file.try_lock().is_err() {
            continue; // its run is alive
        }
        let event = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Event>(&b).ok());
        let spooled = event.is_none_or(|e| shared.spool().append(&e).is_ok());
        if spooled {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// The flag names an event carries: each cut at its first `=`, so a flag
/// given as `--token=abc` is sent as `--token` and its value never leaves;
/// each once, in the order typed (`dedup` alone only drops neighbours); at
/// most [`strings::FLAGS`].
fn flag_names(flags: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    flags
        .into_iter()
        .map(|mut flag| {
            if let Some(at) = flag.find('=') {
                flag.truncate(at);
            }
            flag
        })
        .filter(|flag| !flag.is_empty() && seen.insert(flag.clone()))
        .take(strings::FLAGS)
        .collect()
}

fn bounded(value: PropertyValue) -> PropertyValue {
    match value {
        PropertyValue::String(s) => PropertyValue::String(truncate(s, strings::MAP_VALUE)),
        other => other,
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

fn current() -> Option<Arc<Active>> {
    lock(&CURRENT).as_ref().and_then(Weak::upgrade)
}

fn install_hooks(catch_interrupts: bool) {
    HOOKS.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // A panic on another thread may be caught and survived; only the
            // main thread's panic ends the CLI.
            if std::thread::current().name() == Some("main")
                && let Some(active) = current()
            {
                let payload = info.payload();
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                let location = info
                    .location()
                    .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
                active.end(
                    101,
                    Outcome::Crash,
                    Some(ErrorInfo {
                        kind: "panic".into(),
                        message,
                        location,
                    }),
                );
            }
            previous(info);
        }));
        if catch_interrupts {
            catch_signals();
        }
    });
}

#[cfg(unix)]
fn catch_signals() {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) else {
        return;
    };
    std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            if let Some(active) = current() {
                active.end(128 + signal, Outcome::Interrupted, None);
            }
            // Die the way the signal would have killed us, so the shell
            // sees the usual status.
            let _ = signal_hook::low_level::emulate_default_handler(signal);
            std::process::exit(128 + signal);
        }
    });
}

#[cfg(not(unix))]
fn catch_signals() {}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(flags: &[&str]) -> Vec<String> {
        flag_names(flags.iter().map(|f| (*f).to_owned()).collect())
    }

    /// Regression: `start("login", &["--token=abc"])` sent the token.
    #[test]
    fn a_flag_with_its_value_is_sent_by_name_only() {
        assert_eq!(
            names(&["--token=abc", "--region=eu=west", "-k=v", "--force"]),
            ["--token", "--region", "-k", "--force"]
        );
    }

    #[test]
    fn flag_names_are_sent_once_in_the_order_typed() {
        assert_eq!(
            names(&["--b", "--a=1", "--b", "--a=2", "=nameless", "--a"]),
            ["--b", "--a"]
        );
        let many: Vec<String> = (0..strings::FLAGS + 5).map(|n| format!("--f{n}")).collect();
        assert_eq!(flag_names(many).len(), strings::FLAGS);
    }
}
