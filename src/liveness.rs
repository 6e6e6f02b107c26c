//! Liveness pings for the systemd watchdog: the daemon pings every worker (each
//! modem actor, and a task on the API's runtime that stands for its workers)
//! and sends `WATCHDOG=1` only when all of them answer within half of
//! `WatchdogSec`. A worker answers from every wait it makes (a 60-second
//! `AT+CMGS`, a reopen backoff while a modem is unplugged), so a slow modem
//! never trips the watchdog; a wedged task does.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

/// The registry: one ping counter, one answer per worker.
#[derive(Clone)]
pub struct Liveness {
    inner: Arc<Inner>,
}

struct Inner {
    ping: watch::Sender<u64>,
    /// Worker name -> the last ping it answered.
    pongs: Mutex<HashMap<String, u64>>,
    /// Wakes `check` when an answer comes in.
    answered: tokio::sync::Notify,
}

impl Default for Liveness {
    fn default() -> Self {
        let (ping, _) = watch::channel(0);
        Liveness {
            inner: Arc::new(Inner {
                ping,
                pongs: Mutex::new(HashMap::new()),
                answered: tokio::sync::Notify::new(),
            }),
        }
    }
}

impl std::fmt::Debug for Liveness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Liveness").finish_non_exhaustive()
    }
}

impl Liveness {
    /// A heart for the worker `name`; it counts as alive from now on.
    pub fn heart(&self, name: &str) -> Heart {
        let rx = self.inner.ping.subscribe();
        let current = *rx.borrow();
        if let Ok(mut pongs) = self.inner.pongs.lock() {
            pongs.insert(name.to_string(), current);
        }
        Heart {
            name: name.to_string(),
            rx,
            last: current,
            liveness: self.clone(),
        }
    }

    /// A worker that only answers, spawned on `runtime`: it stands for that
    /// runtime's workers (the API's), which answer while any of them can
    /// run a task. Ends with the runtime, or when `stop` turns true.
    pub fn answer_from(
        &self,
        runtime: &tokio::runtime::Handle,
        name: &str,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut heart = self.heart(name);
        runtime.spawn(async move {
            loop {
                tokio::select! {
                    r = stop.changed() => if r.is_err() || *stop.borrow() { return },
                    _ = heart.pinged() => {}
                }
            }
        });
    }

    /// The worker is gone for good (shut down): stop expecting answers.
    pub fn forget(&self, name: &str) {
        if let Ok(mut pongs) = self.inner.pongs.lock() {
            pongs.remove(name);
        }
    }

    fn pong(&self, name: &str, n: u64) {
        if let Ok(mut pongs) = self.inner.pongs.lock() {
            if let Some(slot) = pongs.get_mut(name) {
                *slot = (*slot).max(n);
            }
        }
        self.inner.answered.notify_waiters();
    }

    fn laggards(&self, n: u64) -> Vec<String> {
        let mut late: Vec<String> = self
            .inner
            .pongs
            .lock()
            .map(|p| {
                p.iter()
                    .filter(|(_, &v)| v < n)
                    .map(|(k, _)| k.clone())
                    .collect()
            })
            .unwrap_or_default();
        late.sort();
        late
    }

    /// Ping every worker; `Ok` when all answered within `timeout`, else the
    /// names of those that did not.
    pub async fn check(&self, timeout: Duration) -> Result<(), Vec<String>> {
        let mut n = 0;
        self.inner.ping.send_modify(|p| {
            *p += 1;
            n = *p;
        });
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let answered = self.inner.answered.notified();
            tokio::pin!(answered);
            answered.as_mut().enable();
            let late = self.laggards(n);
            if late.is_empty() {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, answered).await.is_err() {
                let late = self.laggards(n);
                return if late.is_empty() { Ok(()) } else { Err(late) };
            }
        }
    }
}

/// A worker's side: answer pings from wherever it waits.
pub struct Heart {
    name: String,
    rx: watch::Receiver<u64>,
    /// The last ping answered.
    last: u64,
    liveness: Liveness,
}

impl Heart {
    /// Answer a ping that came in (cheap; call it in loops).
    pub fn answer(&mut self) {
        let n = *self.rx.borrow_and_update();
        if n > self.last {
            self.last = n;
            self.liveness.pong(&self.name, n);
        }
    }

    /// Resolves when a ping comes in, answered (for `select!` loops).
    pub async fn pinged(&mut self) {
        if self.rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
        self.answer();
    }

    /// Await `fut`, answering pings meanwhile.
    pub async fn beating<F: Future>(&mut self, fut: F) -> F::Output {
        tokio::pin!(fut);
        loop {
            self.answer();
            tokio::select! {
                out = &mut fut => return out,
                changed = self.rx.changed() => {
                    if changed.is_err() {
                        // The registry is gone: just wait.
                        return fut.await;
                    }
                }
            }
        }
    }
}

impl Drop for Heart {
    fn drop(&mut self) {
        self.liveness.forget(&self.name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A runtime whose one worker is wedged (a blocking call on it) does
    /// not answer; once free it does again.
    #[tokio::test]
    async fn a_wedged_runtime_does_not_answer() {
        let liveness = Liveness::default();
        let other = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (_stop_tx, stop) = watch::channel(false);
        liveness.answer_from(other.handle(), "api", stop);
        assert_eq!(liveness.check(Duration::from_secs(10)).await, Ok(()));
        // Wedge the worker until told otherwise.
        let (wedged_tx, wedged) = std::sync::mpsc::channel::<()>();
        let (free, free_rx) = std::sync::mpsc::channel::<()>();
        other.spawn(async move {
            let _ = wedged_tx.send(());
            let _ = free_rx.recv();
        });
        tokio::task::spawn_blocking(move || wedged.recv())
            .await
            .unwrap()
            .unwrap();
        // The one worker is in the blocking call: nothing else on that
        // runtime can run, so the answer cannot come.
        assert_eq!(
            liveness.check(Duration::from_millis(100)).await,
            Err(vec!["api".to_string()])
        );
        free.send(()).unwrap();
        assert_eq!(liveness.check(Duration::from_secs(10)).await, Ok(()));
        other.shutdown_background();
    }

    #[tokio::test(start_paused = true)]
    async fn busy_workers_answer_wedged_ones_do_not() {
        let liveness = Liveness::default();
        let mut busy = liveness.heart("modem-a");
        let _wedged = liveness.heart("modem-b");
        // modem-a waits on a long command but answers pings while it does.
        let worker = tokio::spawn(async move {
            busy.beating(tokio::time::sleep(Duration::from_secs(60)))
                .await;
            busy
        });
        tokio::task::yield_now().await;
        assert_eq!(
            liveness.check(Duration::from_secs(5)).await,
            Err(vec!["modem-b".to_string()])
        );
        drop(_wedged);
        assert_eq!(liveness.check(Duration::from_secs(5)).await, Ok(()));
        let busy = worker.await.unwrap();
        drop(busy);
        assert_eq!(
            liveness.check(Duration::from_secs(5)).await,
            Ok(()),
            "no workers left"
        );
    }
}
