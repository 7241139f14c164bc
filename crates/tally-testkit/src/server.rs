//! A Tally server in the test process, on a loopback port of its own.

use std::net::SocketAddr;

use serde_json::Value;

/// `tally serve` in-process on `127.0.0.1:0`, over a data dir of its own;
/// it drains and stops on drop.
///
/// ```no_run
/// let server = tally_testkit::server::RunningServer::start();
/// let key = server.add_app("mycli");
/// assert!(key.starts_with("tk_"));
/// assert!(server.export("mycli").is_empty());
/// ```
pub struct RunningServer {
    /// Its base URL, `http://127.0.0.1:PORT`.
    pub url: String,
    admin: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _data: tempfile::TempDir,
}

impl RunningServer {
    /// A server with the default settings.
    pub fn start() -> Self {
        Self::start_with(|_| {})
    }

    /// A server with the default settings as `configure` changes them.
    pub fn start_with(configure: impl FnOnce(&mut tally_server::Config)) -> Self {
        let data = tempfile::tempdir().expect("tempdir");
        let mut config = tally_server::Config::new(data.path().to_owned());
        configure(&mut config);
        let server = tally_server::Server::open(config).expect("open server");
        let admin = server.admin_token().to_owned();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                addr_tx
                    .send(listener.local_addr().expect("addr"))
                    .expect("send addr");
                server
                    .run(listener, async {
                        let _ = stop.await;
                    })
                    .await
                    .expect("serve");
            });
        });
        let addr: SocketAddr = addr_rx.recv().expect("server address");
        Self {
            url: format!("http://{addr}"),
            admin,
            shutdown: Some(shutdown),
            thread: Some(thread),
            _data: data,
        }
    }

    /// Its data dir.
    pub fn data_dir(&self) -> &std::path::Path {
        self._data.path()
    }

    /// The admin token.
    pub fn admin_token(&self) -> &str {
        &self.admin
    }

    /// Registers `app` and returns its ingest key.
    pub fn add_app(&self, app: &str) -> String {
        let mut response = ureq::post(format!("{}/api/v1/apps", self.url))
            .header("Authorization", &format!("Bearer {}", self.admin))
            .send_json(serde_json::json!({ "name": app }))
            .expect("add app");
        let app: Value = response.body_mut().read_json().expect("app json");
        app["ingest_key"].as_str().expect("key").to_owned()
    }

    /// Every stored event of `app`, as `GET /api/v1/export` gives it.
    pub fn export(&self, app: &str) -> Vec<Value> {
        self.export_text(app)
            .lines()
            .map(|l| serde_json::from_str(l).expect("ndjson"))
            .collect()
    }

    /// The NDJSON text `GET /api/v1/export` gives for `app`, as sent.
    pub fn export_text(&self, app: &str) -> String {
        let mut response = ureq::get(format!("{}/api/v1/export?app={app}", self.url))
            .header("Authorization", &format!("Bearer {}", self.admin))
            .call()
            .expect("export");
        response.body_mut().read_to_string().expect("export body")
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
