//! Group commit: small writes from many concurrent callers (accepting an asynchronous event,
//! removing a handled one) are gathered by one writer thread and committed together, so that
//! they share one fsync instead of paying for one each. A caller is answered only after the
//! transaction holding its write is durable.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use alonzo_store::StoreError;
use rusqlite::{Connection, Transaction, TransactionBehavior};
use tokio::sync::oneshot;

use crate::backend;

/// One write: runs inside the shared transaction.
pub(crate) type Job = Box<dyn FnOnce(&Transaction<'_>) -> Result<(), StoreError> + Send>;

/// Most writes committed together.
const MAX_GROUP: usize = 1024;

/// Handle to the writer thread; dropping every handle stops it.
#[derive(Debug, Clone)]
pub(crate) struct GroupCommit {
    tx: mpsc::Sender<(Job, oneshot::Sender<Result<(), StoreError>>)>,
}

impl GroupCommit {
    /// Starts the writer thread on `conn`.
    pub(crate) fn start(conn: Arc<Mutex<Connection>>) -> Self {
        let (tx, rx) = mpsc::channel::<(Job, oneshot::Sender<Result<(), StoreError>>)>();
        std::thread::Builder::new()
            .name("sqlite-group-commit".into())
            .spawn(move || writer(&conn, &rx))
            .expect("spawning the group-commit thread");
        Self { tx }
    }

    /// Runs `job` in the next group and waits until that group is committed.
    pub(crate) async fn write(&self, job: Job) -> Result<(), StoreError> {
        let (done_tx, done_rx) = oneshot::channel();
        self.tx
            .send((job, done_tx))
            .map_err(|_| StoreError::Backend("the group-commit writer stopped".into()))?;
        done_rx.await.map_err(|_| StoreError::Backend("the group-commit writer stopped".into()))?
    }
}

fn writer(
    conn: &Mutex<Connection>,
    rx: &mpsc::Receiver<(Job, oneshot::Sender<Result<(), StoreError>>)>,
) {
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        let Ok(mut guard) = conn.lock() else {
            for (_, done) in group {
                let _ = done.send(Err(StoreError::Backend("connection mutex poisoned".into())));
            }
            continue;
        };
        let results = commit_group(&mut guard, &mut group);
        drop(guard);
        for ((_, done), result) in group.into_iter().zip(results) {
            let _ = done.send(result);
        }
    }
}

/// Commits the group's jobs in one transaction. A job that fails is rolled back alone (a
/// savepoint each), so one caller's error never fails the others.
fn commit_group(
    conn: &mut Connection,
    group: &mut [(Job, oneshot::Sender<Result<(), StoreError>>)],
) -> Vec<Result<(), StoreError>> {
    let jobs: Vec<Job> = group
        .iter_mut()
        .map(|(job, _)| std::mem::replace(job, Box::new(|_: &Transaction<'_>| Ok(()))))
        .collect();
    let n = jobs.len();
    let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => return (0..n).map(|_| Err(backend(&e))).collect(),
    };
    let mut results = Vec::with_capacity(n);
    for job in jobs {
        if let Err(e) = tx.execute_batch("SAVEPOINT job") {
            results.push(Err(backend(e)));
            continue;
        }
        match job(&tx) {
            Ok(()) => {
                let _ = tx.execute_batch("RELEASE job");
                results.push(Ok(()));
            }
            Err(e) => {
                let _ = tx.execute_batch("ROLLBACK TO job; RELEASE job");
                results.push(Err(e));
            }
        }
    }
    match tx.commit() {
        Ok(()) => results,
        Err(e) => {
            let message = e.to_string();
            (0..n).map(|_| Err(StoreError::Backend(message.clone()))).collect()
        }
    }
}
