//! Python zygotes: one `alonzo_jail::Launcher` per Python interpreter in use, an interpreter
//! initialised once up to the point where a runtime started ahead waits for its function,
//! which forks the jail process of each Python sandbox built ahead so that the sandbox's
//! runtime is a copy of it instead of a new interpreter (see `alonzo-jail/src/launcher.rs`
//! and docs/sandbox.md). A launcher starts when the first such sandbox is built; one that
//! fails to start or dies is retried after `RETRY_AFTER`, and meanwhile sandboxes start the
//! interpreter as before. Each launcher is replaced after `RECYCLE_AFTER` sandboxes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alonzo_jail::{Launcher, PythonLauncher};

use crate::rootfs::{self, RuntimeFiles};
use crate::runtimes::RuntimeKind;

/// How long after a failure no launcher is started for that interpreter.
const RETRY_AFTER: Duration = Duration::from_secs(30);

/// Sandboxes one launcher forks before a new one replaces it. Copies of one interpreter share
/// what it drew at start-up (its string hash seed, its address-space layout), so no more than
/// this many environments share them; replacing costs one interpreter start.
const RECYCLE_AFTER: u32 = 256;

/// The launchers, by interpreter.
#[derive(Debug, Default)]
pub(crate) struct Zygotes {
    by_python: Mutex<HashMap<PathBuf, Slot>>,
}

#[derive(Debug)]
enum Slot {
    Running(Arc<Launcher>, u32),
    Failed(Instant),
}

impl Zygotes {
    /// The running launcher of `python`, starting it if there is none (blocks for the
    /// interpreter's start, some tens of milliseconds, the first time).
    pub(crate) fn get(
        &self,
        exe: &Path,
        files: &RuntimeFiles,
        python: &Path,
    ) -> Option<Arc<Launcher>> {
        let mut map = self.by_python.lock().ok()?;
        match map.get_mut(python) {
            Some(Slot::Running(launcher, forks))
                if *forks < RECYCLE_AFTER && launcher.is_alive() =>
            {
                *forks += 1;
                return Some(Arc::clone(launcher));
            }
            Some(Slot::Failed(when)) if when.elapsed() < RETRY_AFTER => return None,
            _ => {}
        }
        // Started under the lock: concurrent builders wait for this one launcher rather than
        // each starting their own.
        let began = Instant::now();
        let started = launcher_spec(files, python)
            .and_then(|spec| Launcher::start(exe, &spec).map_err(|e| e.to_string()));
        match started {
            Ok(launcher) => {
                tracing::info!(
                    python = %python.display(),
                    ms = began.elapsed().as_millis() as u64,
                    "Python zygote started"
                );
                let launcher = Arc::new(launcher);
                map.insert(python.to_owned(), Slot::Running(Arc::clone(&launcher), 1));
                Some(launcher)
            }
            Err(error) => {
                tracing::warn!(python = %python.display(), %error, "no Python zygote; Python sandboxes start their interpreter");
                map.insert(python.to_owned(), Slot::Failed(Instant::now()));
                None
            }
        }
    }

    /// Records that `python`'s launcher failed a request; the next `get` starts a new one
    /// (after `RETRY_AFTER`).
    pub(crate) fn failed(&self, python: &Path) {
        if let Ok(mut map) = self.by_python.lock() {
            map.insert(python.to_owned(), Slot::Failed(Instant::now()));
        }
    }
}

/// What the launcher of `python` runs: the runtime's argv and starting environment.
fn launcher_spec(files: &RuntimeFiles, python: &Path) -> Result<PythonLauncher, String> {
    let kind = RuntimeKind::Python(python.to_owned());
    Ok(PythonLauncher {
        runtime_dir: files.python_dir().to_owned(),
        argv: rootfs::runtime_argv(&kind).ok_or("no runtime argv")?,
        env: rootfs::started_environment(&kind),
    })
}
