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
    /// Start the flusher thread. An error when it cannot start (no threads
    /// left, a memory limit): without it every durable write would wait
    /// forever, so the store must not open.
    pub(crate) fn start(db: sled::Db) -> std::io::Result<GroupCommit> {
        GroupCommit::start_with(db, |flush| {
            std::thread::Builder::new()
                .name("store-flush".into())
                .spawn(flush)
        })
    }

    /// [`GroupCommit::start`] with the thread started by `spawn` (tests make
    /// it fail).
    fn start_with(
        db: sled::Db,
        spawn: impl FnOnce(Box<dyn FnOnce() + Send>) -> std::io::Result<JoinHandle<()>>,
    ) -> std::io::Result<GroupCommit> {
        let (flushed, _) = watch::channel(Flushed::default());
        let shared = Arc::new(Shared {
            written: AtomicU64::new(0),
            flushed,
            pending: Mutex::new(false),
            signal: Condvar::new(),
            closing: AtomicBool::new(false),
        });
        let for_thread = shared.clone();
        let thread = spawn(Box::new(move || flusher(db, for_thread)))?;
        Ok(GroupCommit {
            shared,
            thread: Mutex::new(Some(thread)),
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_db() -> (sled::Db, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "smsgate-group-commit-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let db = sled::Config::new().path(&dir).open().unwrap();
        (db, dir)
    }

    /// A flusher that cannot start is an error at once, not writers that
    /// wait forever for a flush nobody makes.
    #[tokio::test]
    async fn a_flusher_that_cannot_start_is_an_error() {
        let (db, dir) = temp_db();
        let failed = GroupCommit::start_with(db.clone(), |_| {
            Err(std::io::Error::other("thread limit reached"))
        });
        assert_eq!(
            failed.err().map(|e| e.to_string()),
            Some("thread limit reached".to_string())
        );
        // The real one starts and makes a write durable.
        let commit = GroupCommit::start(db.clone()).unwrap();
        db.insert("k", "v").unwrap();
        let ticket = commit.ticket();
        commit.durable(ticket).await.unwrap();
        commit.close();
        drop(db);
        let _ = std::fs::remove_dir_all(dir);
    }
}
