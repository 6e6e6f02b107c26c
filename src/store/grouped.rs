//! Grouped updates: the changes of many callers (the modem actors' "sending"
//! mark before each `AT+CMGS` and "sent" mark after it) in one sled
//! transaction.
//!
//! Every sled transaction writes its log out twice (`pin_log` seals the I/O
//! buffer before and after the batch: a pwrite and a `sync_file_range` each,
//! on sled's I/O threads, which it starts and parks as they come), and that
//! was most of the daemon's CPU with 64 modems sending. So one thread takes
//! every change waiting and applies them together; each caller gets its own
//! outcome, as [`Store::update_deferred`](super::Store::update_deferred)
//! gives it, and waits for durability through the group commit as before.
//! The thread lets changes gather for a millisecond behind the first one of
//! a batch ([`GATHER`]), then takes what is there, one change or many.

use std::sync::mpsc;
use std::thread::JoinHandle;

use chrono::Utc;
use tokio::sync::oneshot;

use super::outbound::{UpdateTrees, Updated};
use super::records::Message;
use super::Result;

/// How long the writer lets changes gather behind the first one of a
/// batch. Taking only what was already there made a transaction of 2-3
/// changes on average with 64 modems sending: three times the
/// transactions, and the sled I/O threads' work with them. A "sending" mark
/// costs no send this millisecond: it is made while `AT+CMGS=<length>` and
/// its prompt cross the wire, and a "sent" mark is not waited for.
/// (BENCHMARKS.md, the pool: 75.7-83.3% of the wire limits without it,
/// 86.2-91.9% with it, in alternating runs.)
const GATHER: std::time::Duration = std::time::Duration::from_millis(1);

/// A change as the writer's thread holds it.
pub(super) type BoxedChange = Box<dyn Fn(&mut Message) -> bool + Send>;

/// The most changes in one transaction (a transaction holds its writes in
/// memory; 64 modems make at most two each at a time).
const MOST: usize = 256;

struct Request {
    id: String,
    change: BoxedChange,
    reply: oneshot::Sender<Result<Option<Updated>>>,
}

pub(super) struct GroupedUpdates {
    requests: mpsc::Sender<Request>,
    thread: JoinHandle<()>,
}

impl GroupedUpdates {
    /// Start the writer's thread over `trees`.
    pub(super) fn start(trees: UpdateTrees) -> std::io::Result<GroupedUpdates> {
        let (requests, waiting) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("store-grouped".into())
            .spawn(move || write(&trees, &waiting))?;
        Ok(GroupedUpdates { requests, thread })
    }

    /// Queue `change` of message `id`; its outcome comes on the receiver.
    /// The change back when the thread has stopped.
    pub(super) fn submit(
        &self,
        id: &str,
        change: BoxedChange,
    ) -> std::result::Result<oneshot::Receiver<Result<Option<Updated>>>, BoxedChange> {
        let (reply, outcome) = oneshot::channel();
        self.requests
            .send(Request {
                id: id.to_string(),
                change,
                reply,
            })
            .map(|()| outcome)
            .map_err(|refused| refused.0.change)
    }

    /// Apply what is queued and stop the thread (its handles on the trees go
    /// with it, so the same path can be opened again).
    pub(super) fn close(self) {
        drop(self.requests);
        let _ = self.thread.join();
    }
}

/// The thread: wait for a change, let others gather for [`GATHER`], take
/// every one waiting, apply them in one transaction, answer each.
fn write(trees: &UpdateTrees, waiting: &mpsc::Receiver<Request>) {
    while let Ok(first) = waiting.recv() {
        // Let the others' changes gather behind the first.
        std::thread::sleep(GATHER);
        let mut batch = vec![first];
        while batch.len() < MOST {
            match waiting.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        let now = Utc::now();
        let changes: Vec<_> = batch
            .iter()
            .map(|r| (r.id.as_str(), &*r.change as &dyn Fn(&mut Message) -> bool))
            .collect();
        let outcomes: Vec<Result<Option<Updated>>> = match trees.apply(&changes, now) {
            Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
            // One unreadable record (or a store error) fails the whole
            // transaction: each alone then, so the others go through and
            // each caller gets its own error.
            Err(_) => changes
                .iter()
                .map(|change| {
                    trees
                        .apply(std::slice::from_ref(change), now)
                        .map(|mut one| one.pop().flatten())
                })
                .collect(),
        };
        drop(changes);
        for (request, outcome) in batch.into_iter().zip(outcomes) {
            let _ = request.reply.send(outcome);
        }
    }
}
