//! Where an import's events go: into the store, or, when a running server
//! holds it (DuckDB lets one process open a data dir), to that server.

use std::sync::mpsc::{Receiver, SyncSender, channel, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tally_protocol::{IngestResponse, StoredEvent};
use tally_store::{Store, Writer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::client::{Client, check, urlencode};

/// What storing a batch came to.
#[derive(Debug, Default)]
pub(super) struct Stored {
    /// Events stored for the first time.
    pub(super) new: u64,
    /// Events stored before (an import of the same lines).
    pub(super) duplicates: u64,
    /// Events the server refused, and why.
    pub(super) refused: Vec<String>,
}

/// Takes an import's events, a batch at a time.
pub(super) trait Sink {
    fn store(&mut self, events: Vec<StoredEvent>) -> Result<Stored>;
}

/// The store itself, opened by the import.
pub(super) struct StoreSink {
    pub(super) store: Box<dyn Store>,
    pub(super) writer: Box<dyn Writer>,
}

impl Sink for StoreSink {
    fn store(&mut self, events: Vec<StoredEvent>) -> Result<Stored> {
        let mut staged = self.store.stage(events);
        let new = self.writer.insert(&mut staged)?;
        let imported = new.iter().filter(|&&n| n).count() as u64;
        Ok(Stored {
            new: imported,
            duplicates: new.len() as u64 - imported,
            refused: Vec::new(),
        })
    }
}

/// The events a request to the server holds: its default batch limit.
const PER_REQUEST: usize = 1000;
/// Tries of one request the server answers it is too busy for (429, 503).
const TRIES: u32 = 8;

/// A running server, sent the events with the admin token
/// (`POST /api/v1/import`): stored as its own ingest stores, under its
/// caps on distinct values, and forwarded.
pub(super) struct ServerSink {
    pub(super) client: Client,
    pub(super) app: String,
}

impl ServerSink {
    /// The secret the server's app hashes gateway users with.
    pub(super) fn user_key(&self) -> Result<Vec<u8>> {
        #[derive(serde::Deserialize)]
        struct Key {
            user_key: String,
        }
        let path = format!("/api/v1/apps/{}/gateway-key", urlencode(&self.app));
        let key: Key = self
            .client
            .get(&path)?
            .body_mut()
            .read_json()
            .context("reading the app's gateway key")?;
        (0..key.user_key.len())
            .step_by(2)
            .map(|i| {
                key.user_key
                    .get(i..i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            })
            .collect::<Option<Vec<u8>>>()
            .filter(|key| key.len() == 32)
            .context("the server's gateway key is not 32 bytes of hex")
    }

    /// Sends `events`; what the server answered, or `None` when it said
    /// they are too many for one request (413). A refusal it may take
    /// back (429, 503) and a failure to reach it are tried again: every
    /// event keeps its id, so a try whose answer was lost stores nothing
    /// twice.
    fn send(&self, events: &[StoredEvent]) -> Result<Option<IngestResponse>> {
        let sent_at = OffsetDateTime::now_utc().format(&Rfc3339)?;
        let batch = serde_json::json!({
            "sent_at": sent_at,
            "events": events.iter().map(|s| &s.event).collect::<Vec<_>>(),
        });
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        serde_json::to_writer(&mut gzip, &batch)?;
        let body = gzip.finish()?;
        let path = format!("/api/v1/import?app={}", urlencode(&self.app));
        let mut wait = Duration::from_millis(100);
        for tried in 1.. {
            let last = tried == TRIES;
            let mut response = match self.client.post_gzip(&path, &body) {
                Ok(response) => response,
                Err(e) if !last => {
                    tracing::debug!(error = %e, "sending imported requests failed; trying again");
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(5));
                    continue;
                }
                Err(e) => return Err(e),
            };
            match response.status().as_u16() {
                429 | 503 if !last => {}
                413 => return Ok(None),
                // No event of the request could be taken: each is refused,
                // and the import goes on.
                400 => {
                    let text = response.body_mut().read_to_string()?;
                    let refused: serde_json::Value =
                        serde_json::from_str(&text).unwrap_or_default();
                    if let Ok(rejected) = serde_json::from_value(refused["rejected"].clone())
                        && refused["error"] == "invalid_events"
                    {
                        return Ok(Some(IngestResponse {
                            accepted: 0,
                            duplicates: 0,
                            rejected,
                        }));
                    }
                    bail!("the server answered 400 Bad Request: {text}");
                }
                _ => return Ok(Some(check(response)?.body_mut().read_json()?)),
            }
            std::thread::sleep(wait);
            wait = (wait * 2).min(Duration::from_secs(5));
        }
        unreachable!("the last try returns")
    }

    /// Stores `events` into `stored`, in halves when the server takes
    /// fewer a request than they are.
    fn send_into(&self, events: &[StoredEvent], stored: &mut Stored) -> Result<()> {
        let Some(answer) = self.send(events)? else {
            if events.len() == 1 {
                bail!("the server refused one event as too large (413)");
            }
            let (first, second) = events.split_at(events.len() / 2);
            self.send_into(first, stored)?;
            return self.send_into(second, stored);
        };
        if answer.accepted + answer.duplicates + answer.rejected.len() != events.len() {
            bail!(
                "the server answered for {} events of {}",
                answer.accepted + answer.duplicates + answer.rejected.len(),
                events.len()
            );
        }
        stored.new += answer.accepted as u64;
        stored.duplicates += answer.duplicates as u64;
        stored.refused.extend(
            answer
                .rejected
                .iter()
                .map(|r| format!("refused by the server: {}: {}", r.field, r.reason)),
        );
        Ok(())
    }
}

impl Sink for ServerSink {
    fn store(&mut self, events: Vec<StoredEvent>) -> Result<Stored> {
        let mut stored = Stored::default();
        for chunk in events.chunks(PER_REQUEST) {
            self.send_into(chunk, &mut stored)?;
        }
        Ok(stored)
    }
}

/// A sink on a thread of its own: a batch is stored while the next is
/// read and parsed, so the import takes the longer of the two rather than
/// their sum. One batch waits at most while another is stored.
pub(super) struct Storer {
    batches: Option<SyncSender<Vec<StoredEvent>>>,
    results: Receiver<Result<Stored>>,
    /// Batches handed over whose result has not been taken.
    pending: usize,
    thread: Option<JoinHandle<()>>,
}

impl Storer {
    pub(super) fn start(mut sink: Box<dyn Sink + Send>) -> Result<Self> {
        let (batches, todo) = sync_channel::<Vec<StoredEvent>>(1);
        let (done, results) = channel();
        let thread = std::thread::Builder::new()
            .name("tally-import-store".into())
            .spawn(move || {
                for batch in todo {
                    if done.send(sink.store(batch)).is_err() {
                        break;
                    }
                }
            })
            .context("starting the import's store thread")?;
        Ok(Self {
            batches: Some(batches),
            results,
            pending: 0,
            thread: Some(thread),
        })
    }

    /// Hands `batch` over to be stored; returns what the batches stored
    /// since came to, failing with the first that failed.
    pub(super) fn store(&mut self, batch: Vec<StoredEvent>) -> Result<Vec<Stored>> {
        let mut stored = Vec::new();
        while let Ok(result) = self.results.try_recv() {
            self.pending -= 1;
            stored.push(result?);
        }
        let sent = self.batches.as_ref().map(|b| b.send(batch));
        if !matches!(sent, Some(Ok(()))) {
            // The thread is gone: what it said last says why.
            self.settle()?;
            bail!("the import's store thread stopped");
        }
        self.pending += 1;
        Ok(stored)
    }

    /// Waits for every batch handed over to be stored; what they came to.
    pub(super) fn settle(&mut self) -> Result<Vec<Stored>> {
        let mut stored = Vec::new();
        while self.pending > 0 {
            let result = self
                .results
                .recv()
                .context("the import's store thread stopped")?;
            self.pending -= 1;
            stored.push(result?);
        }
        Ok(stored)
    }
}

impl Drop for Storer {
    /// Closes the sink (the store's writer) on its thread, and waits.
    fn drop(&mut self) {
        self.batches = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
