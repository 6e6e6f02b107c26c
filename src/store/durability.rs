//! Group commit: many writers, one `flush()` at a time (ARCHITECTURE.md, "Known
//! traps": sled's `flush_async` stalls with many concurrent callers, while one
//! thread flushing on behalf of a batch of writers is fast and safe).
//!
//! A writer applies its change to sled (in memory), takes a ticket, and waits
//! until a flush that started after its write has finished. The flusher thread
//! reads the newest ticket before each `flush()`, so one flush covers every
//! write that came before it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use tokio::sync::watch;

/// What the flusher has made durable, or why it could not.
#[derive(Debug, Clone, Default)]
struct Flushed {
    ticket: u64,
    failure: Option<String>,
}

struct Shared {
    /// Tickets handed out: one per write that must become durable.
    written: AtomicU64,
    flushed: watch::Sender<Flushed>,
    /// "Work may be pending", guarded for the condition variable.
    pending: Mutex<bool>,
    signal: Condvar,
    /// Set by `close`: flush once more and end the thread.
    closing: AtomicBool,
}

pub(crate) struct GroupCommit {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl GroupCommit {
    pub(crate) fn start(db: sled::Db) -> GroupCommit {
        let (flushed, _) = watch::channel(Flushed::default());
        let shared = Arc::new(Shared {
            written: AtomicU64::new(0),
            flushed,
            pending: Mutex::new(false),
            signal: Condvar::new(),
            closing: AtomicBool::new(false),
        });
        let for_thread = shared.clone();
        let thread = std::thread::Builder::new()
            .name("store-flush".into())
            .spawn(move || flusher(db, for_thread))
            .ok();
        GroupCommit {
            shared,
            thread: Mutex::new(thread),
        }
    }

    /// A ticket for a write that has just been applied.
    pub(crate) fn ticket(&self) -> u64 {
        self.shared.written.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Wait until the write behind `ticket` is on disk.
    pub(crate) async fn durable(&self, ticket: u64) -> Result<(), String> {
        let mut rx = self.shared.flushed.subscribe();
        // Already covered by a flush (a deferred write that a later durable
        // one carried): nothing to ask of the flusher.
        if rx.borrow().ticket >= ticket {
            return Ok(());
        }
        self.shared.poke();
        let state = rx
            .wait_for(|f| f.ticket >= ticket || f.failure.is_some())
            .await
            .map_err(|_| "store flusher stopped".to_string())?;
        match &state.failure {
            Some(failure) if state.ticket < ticket => Err(failure.clone()),
            _ => Ok(()),
        }
    }

    /// Flush what is left and stop the thread (its handle on the database goes
    /// with it, so the same path can be opened again).
    pub(crate) fn close(&self) {
        self.shared.closing.store(true, Ordering::SeqCst);
        self.shared.poke();
        if let Some(thread) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = thread.join();
        }
    }
}

impl Shared {
    fn poke(&self) {
        if let Ok(mut pending) = self.pending.lock() {
            *pending = true;
            self.signal.notify_one();
        }
    }
}

fn flusher(db: sled::Db, shared: Arc<Shared>) {
    loop {
        {
            let Ok(mut pending) = shared.pending.lock() else {
                return;
            };
            while !*pending {
                match shared.signal.wait(pending) {
                    Ok(guard) => pending = guard,
                    Err(_) => return,
                }
            }
            *pending = false;
        }
        let target = shared.written.load(Ordering::SeqCst);
        let closing = shared.closing.load(Ordering::SeqCst);
        if target > shared.flushed.borrow().ticket || closing {
            let failure = db.flush().err().map(|e| format!("store flush failed: {e}"));
            let ticket = if failure.is_none() {
                target
            } else {
                shared.flushed.borrow().ticket
            };
            shared.flushed.send_replace(Flushed { ticket, failure });
        }
        if closing {
            return;
        }
    }
}
