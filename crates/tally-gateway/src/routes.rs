//! Which feature of a CLI a request was: method and path matched against
//! the maintainers' route templates (`GET /v1/projects/{id}` ->
//! `projects.get`), with a real router; a request no template matches is
//! grouped by the shape of its path, with whatever looks like an id (a
//! number, a UUID, a hash, an e-mail, a long token) replaced by `{id}`, so
//! that no id is ever stored.

use std::collections::HashMap;

/// The maintainers' route templates, by method.
///
/// ```
/// let mut routes = tally_gateway::routes::Routes::default();
/// routes.add("GET /v1/projects/{id}", "projects.get")?;
/// assert_eq!(routes.feature("GET", "/v1/projects/42"), "projects.get");
/// assert_eq!(routes.feature("GET", "/v1/users/ada@example.com/keys/9f8e7d6c5b4a3210"), "GET /v1/users/{id}/keys/{id}");
/// # Ok::<(), tally_gateway::routes::BadRoute>(())
/// ```
#[derive(Default)]
pub struct Routes {
    by_method: HashMap<String, matchit::Router<String>>,
}

impl std::fmt::Debug for Routes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Routes")
            .field("methods", &self.by_method.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// A template that cannot be a route, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("route {template:?}: {reason}")]
pub struct BadRoute {
    /// The template as given.
    pub template: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Most segments of a path kept in its shape; a longer one ends in `…`.
const MAX_SEGMENTS: usize = 8;
/// Longest segment kept in a shape as it is (a longer one is an id).
const MAX_SEGMENT: usize = 40;

impl Routes {
    /// Adds `template` (`METHOD /path/{param}/...`, or `* /path` for every
    /// method) as `feature`.
    pub fn add(&mut self, template: &str, feature: &str) -> Result<(), BadRoute> {
        let bad = |reason: String| BadRoute {
            template: template.to_owned(),
            reason,
        };
        let (method, path) = template
            .split_once(' ')
            .ok_or_else(|| bad("write it as METHOD /path, e.g. GET /v1/projects/{id}".into()))?;
        if !path.starts_with('/') {
            return Err(bad("the path must start with /".into()));
        }
        self.by_method
            .entry(method.to_ascii_uppercase())
            .or_default()
            .insert(path, feature.to_owned())
            .map_err(|e| bad(e.to_string()))
    }

    /// The feature of a request: its template's, or its path's shape.
    pub fn feature(&self, method: &str, path: &str) -> String {
        self.templated(method, path)
            .map_or_else(|| format!("{method} {}", shape(path)), str::to_owned)
    }

    /// The feature of the template a request matches, if one does.
    ///
    /// ```
    /// let mut routes = tally_gateway::routes::Routes::default();
    /// routes.add("* /healthz", "health")?;
    /// assert_eq!(routes.templated("HEAD", "/healthz"), Some("health"));
    /// assert_eq!(routes.templated("GET", "/v1/whoami"), None);
    /// # Ok::<(), tally_gateway::routes::BadRoute>(())
    /// ```
    pub fn templated(&self, method: &str, path: &str) -> Option<&str> {
        [method, "*"].into_iter().find_map(|key| {
            let router = self.by_method.get(key)?;
            router.at(path).ok().map(|found| found.value.as_str())
        })
    }
}

/// `path` with each segment that looks like an id as `{id}`.
pub fn shape(path: &str) -> String {
    let mut out = String::new();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    for segment in segments.iter().take(MAX_SEGMENTS) {
        out.push('/');
        out.push_str(if is_id(segment) { "{id}" } else { segment });
    }
    if segments.len() > MAX_SEGMENTS {
        out.push_str("/…");
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// Whether a path segment names one thing rather than a kind of thing.
pub(crate) fn is_id(segment: &str) -> bool {
    let digits = segment.bytes().filter(u8::is_ascii_digit).count();
    segment.len() > MAX_SEGMENT
        || digits == segment.len()
        || segment.contains(['@', '%', '=', '.', ':', '~', '+'])
            && !segment.chars().all(|c| c.is_ascii_alphabetic() || c == '.')
        || (segment.len() >= 8 && digits > 0 && segment.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'))
        || (segment.len() >= 16 && digits > 0)
        // Anything that is not a word: a token, a name with spaces.
        || !segment.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_name_features_and_the_rest_keeps_no_id() {
        let mut routes = Routes::default();
        routes
            .add("GET /v1/projects/{id}", "projects.get")
            .expect("add");
        routes
            .add("POST /v1/projects/{id}/deploys", "deploys.create")
            .expect("add");
        routes.add("* /healthz", "health").expect("add");
        assert_eq!(routes.feature("GET", "/v1/projects/acme"), "projects.get");
        assert_eq!(
            routes.feature("POST", "/v1/projects/acme/deploys"),
            "deploys.create"
        );
        assert_eq!(routes.feature("HEAD", "/healthz"), "health");
        for (path, shape) in [
            (
                "/v1/projects/42/builds/7",
                "GET /v1/projects/{id}/builds/{id}",
            ),
            ("/v1/users/ada@example.com", "GET /v1/users/{id}"),
            (
                "/v1/runs/0195f3a4-6c1e-7cc2-9d61-3f1d6f0b1a01/logs",
                "GET /v1/runs/{id}/logs",
            ),
            (
                "/v1/blobs/9f86d081884c7d659a2feaa0c55ad015",
                "GET /v1/blobs/{id}",
            ),
            ("/v1/tokens/ghp_R4nd0mT0k3nV4lu3Xyz", "GET /v1/tokens/{id}"),
            ("/v1/files/my%20notes.txt", "GET /v1/files/{id}"),
            (
                "/v1/releases/latest/download",
                "GET /v1/releases/latest/download",
            ),
            ("/", "GET /"),
            ("/a/b/c/d/e/f/g/h/i/j", "GET /a/b/c/d/e/f/g/h/…"),
        ] {
            assert_eq!(routes.feature("GET", path), shape, "{path}");
        }
    }

    #[test]
    fn a_template_that_is_no_route_is_refused_with_why() {
        let mut routes = Routes::default();
        assert!(routes.add("/v1/x", "x").is_err());
        assert!(routes.add("GET v1/x", "x").is_err());
        routes.add("GET /v1/{id}", "a").expect("add");
        let e = routes.add("GET /v1/{other}", "b").expect_err("conflict");
        assert!(e.to_string().contains("/v1/{other}"), "{e}");
    }
}
