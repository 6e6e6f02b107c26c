//! The modem engine without the API: a store, a dispatcher and modem actors
//! on simulators' ptys (the real serial path, tokio-serial), for the tests
//! of the engine and of a pool. Every wait is bounded. A test file adds the
//! helpers only it needs in an `impl Gateway` of its own.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use smsgate::modem::{
    spawn_modem, Dispatcher, EngineSettings, ModemSettings, ModemState, ModemStatus,
};
use smsgate::sim::SimHandle;
use smsgate::store::{Message, Store};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The longest any wait of the rig takes before it fails the test.
pub const WAIT: Duration = Duration::from_secs(30);

/// A store, a dispatcher and modem actors.
pub struct Gateway {
    pub store: Store,
    pub dispatcher: Arc<Dispatcher>,
    stop: watch::Sender<bool>,
    actors: Vec<JoinHandle<()>>,
    pub statuses: Vec<watch::Receiver<ModemStatus>>,
}

/// A modem `id` on `sim`'s pty with no limits, as a test starts most.
pub fn modem(id: &str, sim: &SimHandle) -> ModemSettings {
    ModemSettings {
        id: id.to_string(),
        port: sim.link().to_string_lossy().into_owned(),
        baud: 115_200,
        pin: None,
        storage: None,
        own_number: None,
        sends_per_minute: None,
        daily_limit: None,
        rest_after_failures: None,
        resolver: None,
    }
}

/// A store directory under the temp dir, removed when dropped.
pub struct Dir(pub PathBuf);

impl Dir {
    pub fn new(path: PathBuf) -> Dir {
        let _ = std::fs::remove_dir_all(&path);
        Dir(path)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Gateway {
    /// Actors for `modems` over the store at `dir` (opened again after a
    /// stop: [`super::open_store`]).
    pub fn start(dir: &Path, modems: &[ModemSettings], engine: EngineSettings) -> Gateway {
        let store = super::open_store(dir, 8);
        let dispatcher = Arc::new(Dispatcher::new(store.clone()));
        let (stop, stop_rx) = watch::channel(false);
        let engine = Arc::new(engine);
        let mut actors = Vec::new();
        let mut statuses = Vec::new();
        for settings in modems {
            let (actor, status) = spawn_modem(
                settings.clone(),
                engine.clone(),
                store.clone(),
                dispatcher.clone(),
                stop_rx.clone(),
            );
            actors.push(actor);
            statuses.push(status);
        }
        Gateway {
            store,
            dispatcher,
            stop,
            actors,
            statuses,
        }
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for actor in self.actors {
            tokio::time::timeout(WAIT, actor).await.unwrap().unwrap();
        }
    }

    pub async fn wait_ready(&self) {
        for status in &self.statuses {
            let mut rx = status.clone();
            tokio::time::timeout(WAIT, rx.wait_for(|s| s.state == ModemState::Ready))
                .await
                .unwrap_or_else(|_| panic!("modem not ready: {:?}", status.borrow()))
                .unwrap();
        }
    }

    /// The status modem `id` announces now.
    pub fn status(&self, id: &str) -> ModemStatus {
        self.statuses
            .iter()
            .map(|s| s.borrow().clone())
            .find(|s| s.id == id)
            .unwrap()
    }

    /// Poll the store (every 10 ms, bounded) until `done` holds for the message.
    pub async fn wait_for(&self, id: &str, done: impl Fn(&Message) -> bool) -> Message {
        let deadline = Instant::now() + WAIT;
        loop {
            let m = self.store.get(id).unwrap().unwrap();
            if done(&m) {
                return m;
            }
            assert!(Instant::now() < deadline, "timed out; message is {m:#?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
