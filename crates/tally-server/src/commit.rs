//! Group commit: one thread owns the store's writer and commits the events
//! of many requests in one transaction.
//!
//! A request reserves room for its events in a bounded queue (a semaphore of
//! `queue_events` permits) or is told to come back later (429): memory stays
//! bounded whatever the load. The thread takes every job waiting, up to
//! `max_group_events`, commits them together, and only then answers each
//! request, so a 2xx always means "durable". While it commits, the next
//! group gathers, which is why durability costs latency but not throughput.
//!
//! Shutdown: [`Committer::finish`] closes the queue to new requests, then
//! sends a stop marker behind every job already queued, so everything
//! accepted is committed before the thread exits.

use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Instant;

use tally_store::{Staged, StoreError, Writer};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use crate::error::ApiError;
use crate::metrics::Metrics;

type Reply = Result<Vec<bool>, Failed>;

/// Why a job's events were not acknowledged.
#[derive(Debug, Clone)]
enum Failed {
    /// The store refused them: none is stored.
    Store(Arc<StoreError>),
    /// They are stored, and the app's outbox could not take them: the
    /// client's retry (a duplicate to the store) puts them in the outbox.
    Outbox(Arc<tally_forward::ForwardError>),
}

/// Events of a request on their way to an app's outbox, once committed.
pub(crate) type Outgoing = (Arc<tally_forward::Outbox>, Vec<tally_forward::Outgoing>);

struct Job {
    events: Staged,
    outgoing: Option<Outgoing>,
    reply: oneshot::Sender<Reply>,
    _room: OwnedSemaphorePermit,
}

impl Job {
    /// Frees the job's room in the queue, then answers: a client that got
    /// its answer sees the queue without its events.
    fn answer(self, reply: Reply) {
        let Self {
            reply: tx, _room, ..
        } = self;
        drop(_room);
        let _ = tx.send(reply);
    }
}

enum Msg {
    Job(Job),
    Stop,
}

/// The commit thread; finish it after the server stops taking requests.
pub(crate) struct Committer {
    handle: CommitterHandle,
    thread: JoinHandle<()>,
}

/// What request handlers use to commit events.
#[derive(Clone)]
pub(crate) struct CommitterHandle {
    tx: mpsc::Sender<Msg>,
    room: Arc<Semaphore>,
    capacity: usize,
}

impl Committer {
    /// Starts the commit thread over `writer`.
    pub(crate) fn start(
        writer: Box<dyn Writer>,
        queue_events: usize,
        max_group_events: usize,
        metrics: Metrics,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("tally-commit".into())
            .spawn(move || run(writer, &rx, max_group_events, &metrics))?;
        Ok(Self {
            handle: CommitterHandle {
                tx,
                room: Arc::new(Semaphore::new(queue_events)),
                capacity: queue_events,
            },
            thread,
        })
    }

    pub(crate) fn handle(&self) -> CommitterHandle {
        self.handle.clone()
    }

    /// Refuses new work, commits everything queued, and waits for the thread.
    pub(crate) fn finish(self) {
        self.handle.room.close();
        // The thread only exits on Stop, so a send can only fail if it died.
        let _ = self.handle.tx.send(Msg::Stop);
        if self.thread.join().is_err() {
            tracing::error!("The commit thread panicked.");
        }
    }
}

impl CommitterHandle {
    /// Commits `events` (and appends them to their app's outbox, when it
    /// forwards) and says for each whether it was new. Fails with
    /// [`ApiError::Busy`] when the queue is full and with
    /// [`ApiError::Unavailable`] when the store failed (nothing stored) or
    /// the outbox did.
    pub(crate) async fn commit(
        &self,
        events: Staged,
        outgoing: Option<Outgoing>,
    ) -> Result<Vec<bool>, ApiError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let room = match Arc::clone(&self.room).try_acquire_many_owned(events.len() as u32) {
            Ok(room) => room,
            Err(tokio::sync::TryAcquireError::NoPermits) => {
                return Err(ApiError::Busy { retry_after_s: 1 });
            }
            Err(tokio::sync::TryAcquireError::Closed) => {
                return Err(ApiError::Unavailable("the server is shutting down".into()));
            }
        };
        let (reply, answer) = oneshot::channel();
        let job = Job {
            events,
            outgoing,
            reply,
            _room: room,
        };
        self.tx
            .send(Msg::Job(job))
            .map_err(|_| ApiError::Unavailable("the commit thread has stopped".into()))?;
        match answer.await {
            Ok(Ok(new)) => Ok(new),
            Ok(Err(Failed::Store(e))) => Err(ApiError::commit_failed(e)),
            Ok(Err(Failed::Outbox(e))) => {
                tracing::error!(error = %e, "The outbox could not take committed events; their retry will put them there.");
                Err(ApiError::Unavailable(
                    "the events are stored, and could not be queued for forwarding: send them again"
                        .into(),
                ))
            }
            Err(_) => Err(ApiError::Unavailable(
                "the commit thread has stopped".into(),
            )),
        }
    }

    /// Events accepted but not yet committed.
    pub(crate) fn queued_events(&self) -> usize {
        self.capacity - self.room.available_permits()
    }
}

fn run(mut writer: Box<dyn Writer>, rx: &mpsc::Receiver<Msg>, max_group: usize, metrics: &Metrics) {
    while let Ok(Msg::Job(first)) = rx.recv() {
        let mut size = first.events.len();
        let mut jobs = vec![first];
        let mut stop = false;
        while size < max_group {
            match rx.try_recv() {
                Ok(Msg::Job(job)) => {
                    size += job.events.len();
                    jobs.push(job);
                }
                Ok(Msg::Stop) => {
                    stop = true;
                    break;
                }
                Err(_) => break,
            }
        }
        commit_group(writer.as_mut(), jobs, metrics);
        if stop {
            return;
        }
    }
}

fn commit_group(writer: &mut dyn Writer, mut jobs: Vec<Job>, metrics: &Metrics) {
    let mut group = Staged::default();
    let sizes: Vec<usize> = jobs
        .iter_mut()
        .map(|job| {
            let n = job.events.len();
            group.append(std::mem::take(&mut job.events));
            n
        })
        .collect();
    let started = Instant::now();
    let count = group.len();
    let result = writer.insert(&mut group);
    metrics.observe_commit(started.elapsed(), count);
    match result {
        Ok(new) => {
            let mut answers = Vec::with_capacity(jobs.len());
            let mut rest = new.as_slice();
            for n in sizes {
                let (mine, others) = rest.split_at(n);
                rest = others;
                answers.push(Ok(mine.to_vec()));
            }
            queue_for_forwarding(&mut jobs, &mut answers);
            for (job, answer) in jobs.into_iter().zip(answers) {
                job.answer(answer);
            }
        }
        // One request's events must not fail everyone's: retry each alone,
        // so only the request at fault (if any) is refused.
        Err(e) if jobs.len() > 1 => {
            tracing::warn!(error = %e, requests = jobs.len(), "Group commit failed; committing its requests one by one.");
            for (mut job, n) in jobs.into_iter().zip(sizes) {
                let rest = group.split_off(n);
                job.events = std::mem::replace(&mut group, rest);
                commit_group(writer, vec![job], metrics);
            }
        }
        Err(e) => {
            tracing::error!(error = %e, events = count, "Commit failed; the request gets 503.");
            let e = Arc::new(e);
            for job in jobs {
                job.answer(Err(Failed::Store(Arc::clone(&e))));
            }
        }
    }
}

/// Appends the committed events of `jobs` to their apps' outboxes, one
/// write and sync per outbox for the whole group; a job whose outbox
/// failed gets that failure for its answer.
fn queue_for_forwarding(jobs: &mut [Job], answers: &mut [Reply]) {
    let mut outboxes: Vec<(Arc<tally_forward::Outbox>, Vec<usize>)> = Vec::new();
    for (i, job) in jobs.iter().enumerate() {
        if let Some((outbox, _)) = &job.outgoing {
            match outboxes.iter_mut().find(|(o, _)| Arc::ptr_eq(o, outbox)) {
                Some((_, members)) => members.push(i),
                None => outboxes.push((Arc::clone(outbox), vec![i])),
            }
        }
    }
    for (outbox, members) in outboxes {
        let mut events = Vec::new();
        let mut new = Vec::new();
        for &i in &members {
            if let (Some((_, lines)), Ok(flags)) = (jobs[i].outgoing.take(), &answers[i]) {
                events.extend(lines);
                new.extend_from_slice(flags);
            }
        }
        if let Err(e) = outbox.append(&events, &new) {
            let failed = Failed::Outbox(Arc::new(e));
            for i in members {
                answers[i] = Err(failed.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_testkit::events::sample;
    use time::macros::datetime;

    /// A store that refuses any commit holding an event of app "bad", as a
    /// real one refuses what it cannot store, and keeps the rest.
    #[derive(Default)]
    struct Refusing {
        commits: Vec<Vec<u32>>,
    }

    impl Writer for Refusing {
        fn insert(&mut self, batch: &mut Staged) -> Result<Vec<bool>, StoreError> {
            if batch.events().iter().any(|e| e.event.app == "bad") {
                return Err(StoreError::Unavailable("refused".into()));
            }
            let events = batch.split_off(0);
            self.commits.push(
                events
                    .events()
                    .iter()
                    .map(|e| e.event.id.as_u128() as u32)
                    .collect(),
            );
            Ok(vec![true; events.len()])
        }
    }

    #[test]
    fn a_failed_group_is_retried_request_by_request() {
        let at = datetime!(2026-11-20 10:00 UTC);
        let room = Arc::new(Semaphore::new(3));
        let mut replies = Vec::new();
        let jobs: Vec<Job> = [(&[1, 2][..], "ok"), (&[3], "bad"), (&[4, 5, 6], "ok")]
            .into_iter()
            .map(|(ids, app)| {
                let (reply, rx) = oneshot::channel();
                replies.push(rx);
                Job {
                    events: ids
                        .iter()
                        .map(|&n| sample(n, app, at))
                        .collect::<Vec<_>>()
                        .into(),
                    outgoing: None,
                    reply,
                    _room: Arc::clone(&room).try_acquire_owned().expect("room"),
                }
            })
            .collect();
        let mut writer = Refusing::default();
        commit_group(&mut writer, jobs, &Metrics::default());

        assert_eq!(writer.commits, [vec![1, 2], vec![4, 5, 6]]);
        let answers: Vec<Option<usize>> = replies
            .iter_mut()
            .map(|rx| rx.try_recv().expect("answered").ok().map(|new| new.len()))
            .collect();
        assert_eq!(answers, [Some(2), None, Some(3)]);
        assert_eq!(room.available_permits(), 3, "every job freed its room");
    }
}
