//! The dashboard in a real headless Chromium, driven over the DevTools
//! protocol: log in, open every page, apply a filter, and no console error
//! anywhere. Screenshots go to `$CARGO_TARGET_TMPDIR/screenshots/`.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

use crate::support::{TestServer, add_app, data_dir};

/// A headless Chromium; killed on drop.
struct Browser {
    child: Child,
    ws: WebSocket<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    session: Option<String>,
    /// Console errors, exceptions and failed loads seen so far.
    errors: Vec<String>,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chromium() -> String {
    std::env::var("TALLY_CHROMIUM").unwrap_or_else(|_| {
        [
            "/usr/bin/chromium",
            "/usr/bin/chromium-browser",
            "/usr/bin/google-chrome",
        ]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("no Chromium found: install the Debian package `chromium` or set TALLY_CHROMIUM")
        .to_owned()
    })
}

impl Browser {
    fn launch() -> Self {
        let profile = tempfile::tempdir().expect("profile dir");
        let mut child = Command::new(chromium())
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--remote-debugging-port=0",
                "--window-size=1400,1000",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start chromium");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("chromium printed its DevTools URL");
        let (ws, _) = tungstenite::connect(url.as_str()).expect("connect to DevTools");
        if let MaybeTlsStream::Plain(stream) = ws.get_ref() {
            stream
                .set_read_timeout(Some(Duration::from_secs(60)))
                .expect("timeout");
        }
        let mut browser = Self {
            child,
            ws,
            next_id: 0,
            session: None,
            errors: Vec::new(),
            _profile: profile,
        };
        let target = browser.call("Target.createTarget", json!({"url": "about:blank"}));
        let session = browser.call(
            "Target.attachToTarget",
            json!({"targetId": target["targetId"], "flatten": true}),
        );
        browser.session = Some(session["sessionId"].as_str().expect("session").to_owned());
        for domain in ["Runtime.enable", "Log.enable", "Page.enable"] {
            browser.call(domain, json!({}));
        }
        browser.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": false}),
        );
        browser
    }

    /// Sends a command and returns its result, noting errors in the events
    /// that arrive meanwhile.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = &self.session {
            message["sessionId"] = json!(session);
        }
        self.ws
            .send(Message::Text(message.to_string().into()))
            .expect("send to DevTools");
        loop {
            let Message::Text(text) = self.ws.read().expect("read from DevTools") else {
                continue;
            };
            let value: Value = serde_json::from_str(text.as_str()).expect("DevTools JSON");
            if value["id"] == id {
                assert!(value.get("error").is_none(), "{method}: {value}");
                return value["result"].clone();
            }
            self.note(&value);
        }
    }

    fn note(&mut self, event: &Value) {
        let params = &event["params"];
        match event["method"].as_str() {
            Some("Runtime.exceptionThrown") => self.errors.push(format!(
                "exception: {}",
                params["exceptionDetails"]["exception"]["description"]
            )),
            Some("Runtime.consoleAPICalled") if params["type"] == "error" => self
                .errors
                .push(format!("console.error: {}", params["args"])),
            Some("Log.entryAdded") if params["entry"]["level"] == "error" => self
                .errors
                .push(format!("log: {}", params["entry"]["text"])),
            _ => {}
        }
    }

    fn eval(&mut self, expression: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "awaitPromise": true, "returnByValue": true}),
        );
        assert!(
            result.get("exceptionDetails").is_none(),
            "{expression}: {result}"
        );
        result["result"]["value"].clone()
    }

    /// Waits until `expression` is truthy.
    fn wait_for(&mut self, expression: &str, what: &str) {
        let check = format!("Boolean({expression})");
        let shown = tally_testkit::within(Duration::from_secs(30), || {
            (self.eval(&check) == json!(true)).then_some(())
        });
        if shown.is_none() {
            let problem = self.eval("document.getElementById('error')?.textContent || ''");
            panic!(
                "timed out waiting for {what}; page error: {problem}; console: {:?}",
                self.errors
            );
        }
    }

    fn screenshot(&mut self, name: &str) {
        let shot = self.call("Page.captureScreenshot", json!({"format": "png"}));
        let data = shot["data"].as_str().expect("png data");
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data)
            .expect("base64 screenshot");
        std::fs::write(dir.join(format!("{name}.png")), bytes).expect("write screenshot");
    }
}

/// The link `tally serve` prints logs in once, without the token; the
/// code leaves the address bar; a second use is refused; logging out ends
/// the session on the server too.
#[test]
fn the_login_link_logs_in_once() {
    let data = data_dir();
    let server = TestServer::start_with(data.path(), &["--demo"]);
    let link = &server.login_link;
    assert!(link.contains("/#login="), "{link}");
    let mut browser = Browser::launch();
    browser.call("Page.navigate", json!({"url": link}));
    browser.wait_for(
        "document.querySelector('#report-overview table')",
        "the overview, logged in by the link",
    );
    assert_eq!(browser.eval("location.hash"), json!("#/overview"));
    let session = browser.eval("sessionStorage.getItem('tally-token')");
    let session = session.as_str().expect("a session").to_owned();
    assert!(session.starts_with("ts_"), "a session, not the admin token");
    let reports = |token: &str| {
        server
            .agent
            .get(format!("{}/api/v1/apps", server.url))
            .header("Authorization", &format!("Bearer {token}"))
            .call()
            .expect("apps")
            .status()
            .as_u16()
    };
    assert_eq!(reports(&session), 200);
    // Logging out closes the session where it counts.
    browser.eval("document.getElementById('logout').click()");
    browser.wait_for("!document.getElementById('login').hidden", "the login form");
    tally_testkit::eventually(Duration::from_secs(10), "the session closed", || {
        (reports(&session) == 401).then_some(())
    });
    // The same link again: refused, with the reason.
    browser.call("Page.navigate", json!({"url": link}));
    browser.wait_for(
        "!document.getElementById('login-error').hidden",
        "the refusal of a used link",
    );
    let said = browser.eval("document.getElementById('login-error').textContent");
    assert!(
        said.as_str().is_some_and(|s| s.contains("used already")),
        "{said}"
    );
    browser.errors.retain(|e| !e.contains("403"));
    assert!(browser.errors.is_empty(), "{:#?}", browser.errors);
}

#[test]
fn the_dashboard_works_in_a_real_browser() {
    let data = data_dir();
    let server = TestServer::start_with(data.path(), &["--demo"]);
    use_the_dashboard(&server, "");
}

/// The same pages, unchanged, with the events in ClickHouse.
#[test]
fn the_dashboard_works_on_clickhouse() {
    let clickhouse = tally_testkit::clickhouse::LocalServer::start();
    let store = clickhouse.store_url("dashboard");
    let data = data_dir();
    let server = TestServer::start_with(data.path(), &["--demo", "--store", &store]);
    use_the_dashboard(&server, "clickhouse-");
}

/// The same pages on ClickHouse as users run it today (26.x).
#[test]
fn the_dashboard_works_on_current_clickhouse() {
    let clickhouse = tally_testkit::clickhouse::LocalServer::start_current()
        .expect("the current ClickHouse engine needs PyPI's chdb-core");
    let store = clickhouse.store_url("dashboard");
    let data = data_dir();
    let server = TestServer::start_with(data.path(), &["--demo", "--store", &store]);
    use_the_dashboard(&server, "clickhouse-current-");
}

/// An app with 5,000 versions in the field, each sent by its own install
/// through the real server: the pages list the top versions and an
/// `(other)` row with the total, with no error in the page.
#[test]
fn the_dashboard_stays_usable_with_thousands_of_versions() {
    let data = data_dir();
    let server = TestServer::start(data.path());
    let key = add_app(data.path(), "many");
    let events: Vec<tally_protocol::Event> = (0..5_000)
        .map(|i| {
            let mut event = tally_testkit::events::fresh("many");
            event.app_version = format!("1.{}.{}", i / 100, i % 100);
            event
        })
        .collect();
    for batch in events.chunks(1_000) {
        let (status, body) = server.send(&key, batch);
        assert_eq!(status, 200, "{body}");
    }
    let token = server.admin_token();
    let versions: Value = server
        .agent
        .get(format!("{}/api/v1/reports/versions?app=many", server.url))
        .header("Authorization", format!("Bearer {}", token.trim()))
        .call()
        .expect("report")
        .body_mut()
        .read_json()
        .expect("json");
    let table = &versions["tables"][0];
    let rows = table["rows"].as_array().expect("rows");
    let total = table["total_rows"].as_u64().expect("total_rows");
    // 100 versions and the (other) row, whose runs are the rest (if the
    // server folded versions at ingest, into its own (other) too).
    assert_eq!(rows.len(), tally_report::DEFAULT_LIMIT + 1, "{table}");
    let other = rows.last().expect("a last row");
    assert_eq!(other[0], tally_report::OTHER, "{other}");
    assert!(total > rows.len() as u64, "{total} rows in all");
    let runs: i64 = rows.iter().map(|r| r[2].as_i64().expect("runs")).sum();
    assert_eq!(runs, 5_000, "every run is counted, listed or in (other)");

    let mut browser = Browser::launch();
    browser.call("Page.navigate", json!({"url": format!("{}/", server.url)}));
    browser.wait_for(
        "document.readyState === 'complete' && !document.getElementById('login').hidden",
        "the login form",
    );
    browser.eval(&format!(
        "document.getElementById('token').value = {}; \
         document.getElementById('login-form').requestSubmit()",
        json!(token.trim())
    ));
    browser.wait_for(
        "document.querySelector('#report-overview svg')",
        "the overview",
    );
    browser.screenshot("many-versions-overview");
    browser.eval("location.hash = '#/versions'");
    let listed =
        "document.querySelectorAll('#report-versions table[data-table=versions] tbody tr')";
    browser.wait_for(&format!("{listed}.length > 0"), "the versions page");
    assert_eq!(browser.eval(&format!("{listed}.length")), json!(rows.len()));
    assert_eq!(
        browser.eval(&format!("[...{listed}].pop().cells[0].textContent")),
        json!(tally_report::OTHER)
    );
    assert_eq!(
        browser.eval(
            "document.querySelector('#report-versions [data-total-rows]')?.dataset.totalRows"
        ),
        json!(total.to_string())
    );
    browser.screenshot("many-versions");
    assert!(
        browser.errors.is_empty(),
        "console errors: {:#?}",
        browser.errors
    );
}

/// Logs in, opens every page, applies a filter; screenshots are named
/// with `prefix`.
fn use_the_dashboard(server: &TestServer, prefix: &str) {
    let token = server.admin_token();
    let mut browser = Browser::launch();
    let screenshot = |browser: &mut Browser, name: &str| {
        browser.screenshot(&format!("{prefix}{name}"));
    };

    browser.call("Page.navigate", json!({"url": format!("{}/", server.url)}));
    browser.wait_for(
        "document.readyState === 'complete' && !document.getElementById('login').hidden",
        "the login form",
    );
    // Without the token the page shows nothing but the login form.
    assert_eq!(
        browser.eval("document.getElementById('page').children.length"),
        json!(0)
    );
    browser.eval(
        "document.getElementById('token').value = 'wrong'; \
         document.getElementById('login-form').requestSubmit()",
    );
    browser.wait_for(
        "!document.getElementById('login-error').hidden",
        "the refusal",
    );
    browser.errors.retain(|e| !e.contains("401")); // the refused request itself
    browser.eval(&format!(
        "document.getElementById('token').value = {}; \
         document.getElementById('login-form').requestSubmit()",
        json!(token.trim())
    ));
    browser.wait_for(
        "document.querySelector('#report-overview table') && document.querySelector('#report-overview svg')",
        "the overview",
    );
    screenshot(&mut browser, "overview");
    // The period's runs against the period before, with an arrow.
    let delta = browser.eval("document.getElementById('period-delta').textContent");
    assert!(
        delta
            .as_str()
            .is_some_and(|d| d.contains("against the 30 days before")),
        "{delta}"
    );
    // "This release": since the newest version was first seen.
    browser.eval("document.getElementById('release').click()");
    browser.wait_for(
        "document.getElementById('f-since').value !== '' && location.hash.includes('since=')",
        "the release's first day",
    );
    browser.eval("location.hash = '#/overview'");

    for report in tally_report::ReportName::ALL.map(|r| r.as_str()) {
        browser.eval(&format!("location.hash = '#/{report}'"));
        if report == "deprecation" {
            browser.wait_for(
                "!document.getElementById('deprecation-filters').hidden",
                "deprecation filters",
            );
            browser.eval(
                "document.getElementById('f-flag').value = '--legacy-output'; \
                 document.getElementById('filters').requestSubmit()",
            );
        }
        browser.wait_for(
            &format!("document.querySelector('#report-{report} .card')"),
            &format!("the {report} page"),
        );
        screenshot(&mut browser, report);
        // At 1280 px, no column of any table is cut off by its card.
        let clipped = browser.eval(
            "[...document.querySelectorAll('#page .card')].flatMap((card) => { \
               const edge = card.getBoundingClientRect().right; \
               return [...card.querySelectorAll('th')] \
                 .filter((th) => th.getBoundingClientRect().right > edge + 1) \
                 .map((th) => th.textContent); })",
        );
        assert_eq!(clipped, json!([]), "columns cut off on the {report} page");
    }

    // Release health leads with its answer: the demo's 1.2.0 regression
    // of `deploy`, and its rows first, in red.
    browser.eval("location.hash = '#/health'");
    browser.wait_for("document.querySelector('#headline h1')", "the headline");
    let headline = browser.eval("document.querySelector('#headline h1').textContent");
    let headline = headline.as_str().expect("text");
    assert!(
        headline.starts_with("1.2.0: `deploy") && headline.contains("fell from"),
        "{headline}"
    );
    assert_eq!(
        browser.eval(
            "document.querySelector('#report-health table[data-table=commands] tbody tr').className"
        ),
        json!("regression")
    );
    // And 1.2.1's fix of it, in green, after the regressions.
    assert_eq!(
        browser.eval(
            "[...document.querySelectorAll('#report-health table[data-table=commands] tr.improvement td')]\
             .slice(0, 2).map((td) => td.textContent)"
        ),
        json!(["deploy", "1.2.1"])
    );

    // A click on a version filters by it, in the URL, which a reload keeps.
    browser.eval("location.hash = '#/versions'");
    browser.wait_for(
        "document.querySelector('#report-versions table[data-table=versions] a.drill')",
        "a version to click",
    );
    let version = browser.eval(
        "(() => { const a = document.querySelector('#report-versions table[data-table=versions] a.drill'); \
           a.click(); return a.textContent; })()",
    );
    browser.wait_for(
        &format!("location.hash.includes('version=' + encodeURIComponent({version}))"),
        "the version in the URL",
    );
    browser.call("Page.reload", json!({}));
    browser.wait_for(
        &format!(
            "document.getElementById('f-version') && document.getElementById('f-version').value === {version} \
             && document.querySelector('#report-versions table')"
        ),
        "the filter after a reload",
    );
    browser.eval("history.back()");
    browser.wait_for(
        "!location.hash.includes('version=')",
        "the view before the click, with the back button",
    );

    // A command leads to its flags, and from there to its durations.
    browser.eval("location.hash = '#/commands?app=democli'");
    browser.wait_for(
        "document.querySelector('#report-commands a.drill[href*=\"cmd=deploy\"]')",
        "a command to click",
    );
    browser
        .eval("document.querySelector('#report-commands a.drill[href*=\"cmd=deploy\"]').click()");
    browser.wait_for("document.getElementById('focus')", "the flags of deploy");
    let commands = browser.eval(
        "[...new Set([...document.querySelectorAll('#report-flags tbody tr td:first-child')].map((td) => td.textContent))]",
    );
    assert_eq!(commands, json!(["deploy"]), "only deploy's flags");
    browser.eval("[...document.querySelectorAll('#focus a')].find((a) => a.textContent === 'Durations').click()");
    browser.wait_for(
        "location.hash.startsWith('#/durations') && document.querySelector('#report-durations tbody tr')",
        "the durations of deploy",
    );
    let commands = browser.eval(
        "[...new Set([...document.querySelectorAll('#report-durations tbody tr td:first-child')].map((td) => td.textContent))]",
    );
    assert_eq!(commands, json!(["deploy"]), "only deploy's durations");

    // An error leads to the versions it was seen in and the commands that
    // hit it.
    browser.eval("location.hash = '#/errors?app=democli'");
    browser.wait_for(
        "document.querySelector('#report-errors table[data-table=errors] a.drill')",
        "an error to click",
    );
    let kind = browser.eval(
        "(() => { const a = document.querySelector('#report-errors table[data-table=errors] a.drill'); \
           a.click(); return a.textContent; })()",
    );
    browser.wait_for("document.getElementById('focus')", "the error alone");
    let kinds = browser.eval(
        "[...new Set([...document.querySelectorAll('#report-errors table[data-table=commands] tbody td:first-child')].map((td) => td.textContent))]",
    );
    assert_eq!(kinds, json!([kind]), "only that error's commands");

    // Two versions side by side: 1.2.0's broken deploys come first.
    browser.eval("location.hash = '#/compare?app=democli&a=1.1.0&b=1.2.0'");
    browser.wait_for(
        "document.querySelector('#report-compare table tbody tr')",
        "the comparison",
    );
    let first = browser.eval(
        "[...document.querySelectorAll('#report-compare tbody tr:first-child td')].map((td) => td.textContent)",
    );
    assert!(
        first[0].as_str().is_some_and(|c| c.starts_with("deploy")),
        "{first}"
    );
    assert_eq!(
        browser.eval("document.querySelectorAll('#report-compare thead th').length"),
        json!(10)
    );
    screenshot(&mut browser, "compare");

    // The CSV a download gets is what `tally report --format csv` prints.
    let csv = browser.eval(&format!(
        "fetch('/api/v1/reports/commands?app=democli&format=csv&table=commands', \
           {{ headers: {{ Authorization: 'Bearer ' + {} }} }}).then((r) => r.text())",
        json!(token.trim())
    ));
    let (ok, printed, stderr) = crate::support::tally(&[
        "report",
        "commands",
        "--app",
        "democli",
        "--format",
        "csv",
        "--server",
        &server.url,
        "--token",
        token.trim(),
    ]);
    assert!(ok, "{stderr}");
    assert_eq!(csv, json!(printed));
    // The demo's custom events, and the cache layer its schema shows.
    browser.eval("location.hash = '#/events'");
    browser.wait_for(
        "[...document.querySelectorAll('#report-events table[data-table=properties] td')]\
         .some((td) => td.textContent === 'memory')",
        "the cache layers of the custom events",
    );

    // A filter changes what the page shows, to what the API answers.
    browser.eval("location.hash = '#/commands'");
    browser.wait_for(
        "document.querySelector('#report-commands table')",
        "commands",
    );
    browser.eval(
        "document.getElementById('f-env').value = 'ci'; \
         document.getElementById('filters').requestSubmit()",
    );
    let expected: Value = server
        .agent
        .get(format!(
            "{}/api/v1/reports/commands?app=democli&env=ci",
            server.url
        ))
        .header("Authorization", format!("Bearer {}", token.trim()))
        .call()
        .expect("report")
        .body_mut()
        .read_json()
        .expect("json");
    let first_runs = expected["tables"][0]["rows"][0][1].as_i64().expect("runs");
    browser.wait_for(
        &format!(
            "[...document.querySelectorAll('#report-commands tbody tr:first-child td')]\
             .some(td => td.textContent === ({first_runs}).toLocaleString('en-US'))"
        ),
        "the CI-only numbers",
    );
    screenshot(&mut browser, "commands-ci");

    // On a phone the page is as wide as the screen: tables scroll within
    // their cards, the page does not.
    browser.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": true}),
    );
    for page in ["overview", "health"] {
        browser.eval(&format!("location.hash = '#/{page}?app=democli'"));
        browser.wait_for(
            &format!("document.querySelector('#report-{page} .card')"),
            &format!("the {page} page on a phone"),
        );
        screenshot(&mut browser, &format!("phone-{page}"));
        assert_eq!(
            browser.eval("document.documentElement.scrollWidth <= window.innerWidth + 1"),
            json!(true),
            "the {page} page is wider than a phone"
        );
    }

    assert!(
        browser.errors.is_empty(),
        "console errors: {:#?}",
        browser.errors
    );
}
