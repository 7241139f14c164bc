//! One logged request as a Tally event: the feature as the command, the
//! status as the outcome, the User-Agent's CLI, version and platform, and
//! the user's token or subject only as a keyed hash, as the install.

use std::collections::{BTreeMap, HashMap};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tally_protocol::{ErrorInfo, Event, Outcome, PropertyValue, Source, strings};
use uuid::Uuid;

use crate::access::Request;
use crate::agent::{self, Kind, Rule};
use crate::routes::Routes;

/// What turning requests into one app's events needs.
#[derive(Debug, Clone, Copy)]
pub struct Import<'a> {
    /// The app the requests are usage of.
    pub app: &'a str,
    /// The name the app's CLI gives in its User-Agent (often the app's).
    pub cli: &'a str,
    /// The secret users' tokens are hashed with: without it no one can
    /// tell which token a hashed install stands for.
    pub secret: &'a [u8],
    /// The route templates.
    pub routes: &'a Routes,
    /// The maintainers' User-Agent rules.
    pub rules: &'a [Rule],
    /// Query parameters kept (as `query.NAME` properties); the rest of a
    /// query is dropped.
    pub query_params: &'a [String],
    /// The server whose log it is, when several serve the same API behind
    /// a balancer: two of them may log the very same line in the same
    /// second, each a request of its own. Empty for one server.
    pub instance: &'a str,
}

/// The secret an app's gateway users are hashed with, derived from the
/// app's own secret salt: what a server gives `tally import-logs` (with
/// the admin token) instead of the salt, which also keys the app's
/// PostHog and Segment user ids. An import into the store and one through
/// its server hash a user alike.
///
/// ```
/// let key = tally_gateway::event::user_key("s3cret");
/// assert_eq!(key.len(), 32);
/// assert_ne!(key, tally_gateway::event::user_key("other"));
/// ```
pub fn user_key(salt: &str) -> [u8; 32] {
    // The label is the key and the salt the message: the app's PostHog
    // and Segment install ids are HMACs keyed with the salt, of ids a
    // client chooses, so no such id can be made to stand for this key.
    let mut mac = Hmac::<Sha256>::new_from_slice(b"tally gateway users")
        .expect("HMAC takes a key of any length");
    mac.update(salt.as_bytes());
    mac.finalize().into_bytes().into()
}

/// Namespace of the ids of imported requests (a UUIDv5 namespace of
/// Tally's own).
const IDS: Uuid = Uuid::from_u128(0x2c5e_7d1a_4b3f_4a9e_9c01_6f2b_8d3e_5a17);

/// Distinct User-Agents whose reading is kept; past it, the cache starts
/// again (a client that makes one up per request costs the parsing, not
/// memory).
const CACHED_AGENTS: usize = 10_000;
/// Distinct users whose hash is kept, likewise.
const CACHED_USERS: usize = 100_000;
/// The longest User-Agent or user kept in a cache: any client writes them,
/// up to a line's length, and the caches are bounded by their entries.
const CACHED_LEN: usize = 256;

/// Distinct values an import keeps of a field its clients choose: the
/// path's shape when no template matches, and the version a User-Agent
/// gives, counted apart for the app's own CLI and for the other clients.
/// A client sending a new User-Agent or path every request would
/// otherwise make every report a list of its inventions (and another
/// client's inventions never crowd out the CLI's releases). Beyond it, new
/// values are `(other)`, as the server's ingest folds them. The features
/// of route templates are never folded: the config bounds them.
pub const MAX_DISTINCT: usize = 1000;

/// The values of one field seen in an import.
#[derive(Debug, Default)]
struct Distinct(std::collections::HashSet<String>);

impl Distinct {
    fn fold(&mut self, value: &mut String) {
        if self.0.contains(value.as_str()) {
            return;
        }
        if self.0.len() >= MAX_DISTINCT {
            *value = tally_report::OTHER.into();
        } else {
            self.0.insert(value.clone());
        }
    }
}

/// An [`Import`] at work: it keeps what it read of each User-Agent and the
/// hash of each user, as a log holds a few clients and users many times
/// over, and the distinct values it let through ([`MAX_DISTINCT`]).
///
/// ```
/// use tally_gateway::{access, event::{Import, Importer}, routes::Routes};
/// let raw = r#"203.0.113.9 - - [25/Nov/2026:12:00:01 +0000] "GET /v1/projects/42 HTTP/1.1" 404 9 "-" "mycli/1.4.2 (linux; x86_64)""#;
/// let line = access::parse(raw)?;
/// let routes = Routes::default();
/// let mut importer = Importer::new(Import { app: "mycli", cli: "mycli", secret: b"s3cret", routes: &routes, rules: &[], query_params: &[], instance: "" });
/// let e = importer.event(&line, raw, 0);
/// assert_eq!((e.command.as_str(), e.app_version.as_str(), e.exit_code), ("GET /v1/projects/{id}", "1.4.2", 1));
/// assert_eq!(e.error.map(|e| e.kind).as_deref(), Some("http_404"));
/// # Ok::<(), tally_gateway::access::BadLine>(())
/// ```
pub struct Importer<'a> {
    import: Import<'a>,
    /// Keyed with the secret once; cloned for each user.
    mac: Hmac<Sha256>,
    agents: HashMap<Box<str>, Caller>,
    users: HashMap<Box<str>, Uuid>,
    /// The app's CLI's versions, other clients' versions, and paths'
    /// shapes.
    seen: [Distinct; 3],
}

/// What an event keeps of one User-Agent.
#[derive(Debug, Clone)]
struct Caller {
    app_version: String,
    /// Whether the User-Agent names the app's own CLI.
    own: bool,
    os: String,
    arch: String,
    ci: Option<String>,
    agent: Option<String>,
    /// The install of a request without a user: each User-Agent is one.
    install: Uuid,
}

impl std::fmt::Debug for Importer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Importer")
            .field("import", &self.import)
            .field("agents", &self.agents.len())
            .field("users", &self.users.len())
            .finish()
    }
}

impl<'a> Importer<'a> {
    /// Starts `import`, knowing nothing yet.
    pub fn new(import: Import<'a>) -> Self {
        let mac =
            Hmac::<Sha256>::new_from_slice(import.secret).expect("HMAC takes a key of any length");
        Self {
            import,
            mac,
            agents: HashMap::new(),
            users: HashMap::new(),
            seen: Default::default(),
        }
    }

    /// The import's settings.
    pub fn import(&self) -> &Import<'a> {
        &self.import
    }

    /// The event of `line`, whose text is `raw`, the `occurrence`-th line
    /// of that very text within its second (0 for the first): the id comes
    /// from the app, the text and the occurrence, so importing a file
    /// again, or a rotated file that overlaps the last, stores nothing
    /// twice.
    pub fn event(&mut self, line: &Request, raw: &str, occurrence: u32) -> Event {
        let mut caller = self.caller(line.user_agent);
        let [own, others, shapes] = &mut self.seen;
        if caller.own { own } else { others }.fold(&mut caller.app_version);
        let command = match self.import.routes.templated(line.method, line.path) {
            Some(feature) => feature.to_owned(),
            None => {
                let mut shape = fit(
                    format!("{} {}", line.method, crate::routes::shape(line.path)),
                    strings::COMMAND,
                );
                shapes.fold(&mut shape);
                shape
            }
        };
        let install_id = match line.user {
            Some(user) => self.user(user),
            // Without a user, each User-Agent is one install: a floor.
            None => caller.install,
        };
        let import = &self.import;
        let failed = line.status >= 400;
        let mut properties = BTreeMap::new();
        for (name, value) in line
            .query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .filter_map(|p| p.split_once('='))
        {
            if import.query_params.iter().any(|p| p == name) {
                properties.insert(format!("query.{name}"), PropertyValue::String(value.into()));
            }
        }
        Event {
            id: line_id(import, raw, occurrence),
            timestamp: line.time,
            app: import.app.to_owned(),
            app_version: caller.app_version,
            install_id,
            name: None,
            command: fit(command, strings::COMMAND),
            flags: Vec::new(),
            exit_code: i32::from(failed),
            outcome: Some(if failed {
                Outcome::Failure
            } else {
                Outcome::Success
            }),
            // Any field of a log line may be a client's: a day at most.
            duration_ms: line
                .duration_ms
                .filter(|d| d.is_finite())
                .map_or(0, |d| d.clamp(0.0, 86_400_000.0).round() as u64),
            os: caller.os,
            arch: caller.arch,
            os_version: None,
            ci: caller.ci,
            agent: caller.agent,
            tty: None,
            container: None,
            wsl: None,
            error: failed.then(|| ErrorInfo {
                kind: format!("http_{}", line.status),
                message: String::new(),
                location: None,
            }),
            deps: BTreeMap::new(),
            properties,
            source: Source::Gateway,
        }
    }

    /// What `ua` says, read once (when it is not too long to keep).
    fn caller(&mut self, ua: &str) -> Caller {
        if let Some(caller) = self.agents.get(ua) {
            return caller.clone();
        }
        let caller = self.read(ua);
        if ua.len() <= CACHED_LEN {
            if self.agents.len() >= CACHED_AGENTS {
                self.agents.clear();
            }
            self.agents.insert(ua.into(), caller.clone());
        }
        caller
    }

    /// Reads `ua` into what an event keeps of it.
    fn read(&self, ua: &str) -> Caller {
        let client = agent::parse_with(self.import.rules, ua);
        // A User-Agent is anyone's to write: only what looks like a
        // version or a product name is kept of it (`alice@example.com/1.0`
        // or `mycli/ghp_token` say nothing of a CLI, and may say who).
        let version = client
            .version
            .clone()
            .filter(|v| is_token(v) && v.starts_with(|c: char| c.is_ascii_digit()));
        let own = client.kind == Kind::Cli && client.name.eq_ignore_ascii_case(self.import.cli);
        let app_version = match client.kind {
            Kind::Cli if own => version.unwrap_or_else(|| "unknown".into()),
            // Other clients of the API stay countable: each as its own
            // "version" of the app's usage.
            Kind::Cli if is_product(&client.name) => match version {
                Some(v) => format!("{}/{v}", client.name),
                None => client.name.clone(),
            },
            Kind::Browser => "(browser)".into(),
            Kind::Cli | Kind::Unknown => "(unknown)".into(),
        };
        let platform = |value: Option<String>| {
            value
                .filter(|v| is_token(v))
                .map(|v| fit(v, strings::PLATFORM))
        };
        Caller {
            app_version: fit(app_version, strings::VERSION),
            own,
            os: platform(client.os).unwrap_or_else(|| "unknown".into()),
            arch: platform(client.arch).unwrap_or_else(|| "unknown".into()),
            ci: platform(client.ci),
            agent: platform(client.agent),
            install: self.hashed("ua:", ua),
        }
    }

    /// The install of `user`, hashed once.
    fn user(&mut self, user: &str) -> Uuid {
        if let Some(&install) = self.users.get(user) {
            return install;
        }
        if self.users.len() >= CACHED_USERS {
            self.users.clear();
        }
        let install = self.hashed("user:", user);
        if user.len() <= CACHED_LEN {
            self.users.insert(user.into(), install);
        }
        install
    }

    /// The first 16 bytes of the HMAC-SHA256 of `kind` and `text`, keyed
    /// with the secret, as a UUIDv8.
    fn hashed(&self, kind: &str, text: &str) -> Uuid {
        let mut mac = self.mac.clone();
        mac.update(kind.as_bytes());
        mac.update(text.as_bytes());
        let hash = mac.finalize().into_bytes();
        let mut bytes = [0; 16];
        bytes.copy_from_slice(&hash[..16]);
        Uuid::new_v8(bytes)
    }
}

/// The UUIDv5 of the app, the instance (if named), a line's text and its
/// occurrence, in [`IDS`]:
/// SHA-1 as the `sha1` crate does it, with the CPU's SHA instructions
/// where it has them (`Uuid::new_v5` hashes without).
fn line_id(import: &Import, raw: &str, occurrence: u32) -> Uuid {
    use sha1::Digest;
    let mut sha = sha1::Sha1::new();
    sha.update(IDS.as_bytes());
    sha.update(import.app.as_bytes());
    sha.update([0]);
    if !import.instance.is_empty() {
        sha.update(import.instance.as_bytes());
        sha.update([0]);
    }
    sha.update(raw.as_bytes());
    sha.update(occurrence.to_le_bytes());
    let hash = sha.finalize();
    let mut bytes = [0; 16];
    bytes.copy_from_slice(&hash[..16]);
    uuid::Builder::from_sha1_bytes(bytes).into_uuid()
}

/// A name or version as CLIs write them: letters, digits, `.`, `-`, `_`
/// and `+`, 1 to 64 of them, and no e-mail, token or id.
fn is_token(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'+'))
        && !(s.len() >= 16 && s.bytes().filter(u8::is_ascii_digit).count() >= 4 && s.contains('_'))
}

/// A product name: a token (or words of tokens, `GitHub CLI`) that starts
/// with a letter and is no id.
fn is_product(name: &str) -> bool {
    name.len() <= 32
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .split(' ')
            .all(|word| is_token(word) && !crate::routes::is_id(word))
}

/// `s` cut to at most `max` bytes, at a character.
fn fit(mut s: String, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn line<'a>(user: Option<&'a str>, ua: &'a str, status: u16) -> Request<'a> {
        Request {
            time: datetime!(2026-11-25 12:00:01 UTC),
            method: "GET",
            path: "/v1/projects/42",
            query: Some("verbose=1&token=secret"),
            status,
            user,
            user_agent: ua,
            duration_ms: Some(12.4),
        }
    }

    fn import<'a>(routes: &'a Routes, params: &'a [String]) -> Importer<'a> {
        Importer::new(Import {
            app: "mycli",
            cli: "mycli",
            secret: b"s3cret",
            routes,
            rules: &[],
            query_params: params,
            instance: "",
        })
    }

    #[test]
    fn a_request_reads_as_its_clis_run_and_keeps_nothing_private() {
        let mut routes = Routes::default();
        routes
            .add("GET /v1/projects/{id}", "projects.get")
            .expect("route");
        let params = ["verbose".to_owned()];
        let mut import = import(&routes, &params);
        let e = import.event(
            &line(
                Some("tok_live_1234"),
                "mycli/1.4.2 (darwin; arm64; agent=cursor)",
                200,
            ),
            "raw",
            0,
        );
        assert_eq!(
            (
                e.command.as_str(),
                e.app_version.as_str(),
                e.exit_code,
                e.duration_ms
            ),
            ("projects.get", "1.4.2", 0, 12)
        );
        assert_eq!(
            (e.os.as_str(), e.arch.as_str(), e.agent.as_deref()),
            ("macos", "aarch64", Some("cursor"))
        );
        let text = serde_json::to_string(&e).expect("json");
        for private in ["tok_live_1234", "secret", "token"] {
            assert!(!text.contains(private), "{private} in {text}");
        }
        assert_eq!(
            e.properties["query.verbose"],
            PropertyValue::String("1".into())
        );
        assert_eq!(e.source, tally_protocol::Source::Gateway);
        // The same user is the same install, whatever their client.
        let other = import.event(&line(Some("tok_live_1234"), "curl/8.5.0", 500), "raw2", 0);
        assert_eq!(other.install_id, e.install_id);
        assert_eq!(
            (other.app_version.as_str(), other.error.map(|e| e.kind)),
            ("curl/8.5.0", Some("http_500".into()))
        );
    }

    #[test]
    fn what_a_user_agent_says_is_kept_only_where_it_reads_as_a_cli() {
        let routes = Routes::default();
        let mut import = import(&routes, &[]);
        for (ua, version) in [
            ("alice@example.com/1.0", "(unknown)"),
            ("mycli/ghp_R4nd0mT0k3n", "unknown"),
            ("curl/8.5.0", "curl/8.5.0"),
            ("GitHub CLI 2.63.0", "GitHub CLI/2.63.0"),
        ] {
            let e = import.event(&line(None, ua, 200), ua, 0);
            assert_eq!(e.app_version, version, "{ua}");
        }
        let e = import.event(&line(None, "mycli/1.0 Agent/bob@corp.com", 200), "x", 0);
        assert_eq!(e.agent, None);
        let mut timed = line(None, "mycli/1.0", 200);
        timed.duration_ms = Some(1e300);
        assert_eq!(import.event(&timed, "y", 0).duration_ms, 86_400_000);
    }

    #[test]
    fn the_same_line_has_the_same_id_and_its_repeats_their_own() {
        let routes = Routes::default();
        let mut import = import(&routes, &[]);
        let l = line(None, "", 200);
        assert_eq!(
            import.event(&l, "same", 0).id,
            import.event(&l, "same", 0).id
        );
        assert_ne!(
            import.event(&l, "same", 0).id,
            import.event(&l, "same", 1).id
        );
        assert_eq!(import.event(&l, "same", 0).app_version, "(unknown)");
        // Ids are UUIDv5s of the app and the line's text and occurrence,
        // whatever computes the SHA-1.
        let mut text = b"mycli\0same".to_vec();
        text.extend_from_slice(&1u32.to_le_bytes());
        assert_eq!(import.event(&l, "same", 1).id, Uuid::new_v5(&IDS, &text));
        // The same line in another server's log is another request.
        let mut other = Importer::new(Import {
            instance: "web-2",
            ..*import.import()
        });
        assert_ne!(
            other.event(&l, "same", 0).id,
            import.event(&l, "same", 0).id
        );
    }

    #[test]
    fn a_cached_reading_is_the_reading() {
        let routes = Routes::default();
        let mut import = import(&routes, &[]);
        let ua = "mycli/1.4.2 (linux; amd64; ci=github-actions)";
        let first = import.event(&line(None, ua, 200), "a", 0);
        let again = import.event(&line(Some("tok"), ua, 200), "b", 0);
        let user = import.event(&line(Some("tok"), "curl/8.5.0", 200), "c", 0);
        assert_eq!(
            (
                again.app_version.as_str(),
                again.arch.as_str(),
                again.ci.as_deref()
            ),
            ("1.4.2", "x86_64", Some("github-actions"))
        );
        assert_eq!(
            (first.os.as_str(), first.app_version.as_str()),
            ("linux", "1.4.2")
        );
        assert_ne!(
            first.install_id, again.install_id,
            "a user is not a User-Agent"
        );
        assert_eq!(user.install_id, again.install_id);
    }

    #[test]
    fn a_flood_of_made_up_clients_and_paths_folds_only_theirs() {
        let mut routes = Routes::default();
        routes
            .add("GET /v1/projects/{id}", "projects.get")
            .expect("route");
        let mut import = import(&routes, &[]);
        for n in 0..MAX_DISTINCT + 5 {
            let ua = format!("flood{n}/1.0");
            let path = format!("/v1/made-up-{n}");
            let mut flood = line(None, &ua, 200);
            flood.path = &path;
            let e = import.event(&flood, "x", 0);
            let folded = n >= MAX_DISTINCT;
            assert_eq!(e.app_version == "(other)", folded, "{}", e.app_version);
            assert_eq!(e.command == "(other)", folded, "{}", e.command);
        }
        // The CLI's own releases and the configured features still count.
        let mut own = line(None, "mycli/9.9.9", 200);
        own.path = "/v1/projects/7";
        let e = import.event(&own, "y", 0);
        assert_eq!(
            (e.app_version.as_str(), e.command.as_str()),
            ("9.9.9", "projects.get")
        );
    }
}
