//! [`SqliteQueueStore`]: the SQS-compatible queues in their own database file
//! (`<data>/queues.db`, own migrations), WAL with `synchronous=FULL`.
//!
//! Group commit: one writer thread owns the connection and drains a channel of pending
//! operations; everything it drained runs in one transaction (each operation inside its own
//! savepoint, so a failing one does not undo the others) and every caller is answered only
//! after that transaction's COMMIT, i.e. after its fsync. Concurrent `SendMessage` calls thus
//! share fsyncs instead of queueing behind one each.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::mpsc;

use alonzo_store::queue::{
    MessageAttributeValue, NewMessage, QueueCounts, QueueId, QueueRecord, QueueStore,
    QueueStoreError, ReceiveRequest, Received, StoredMessage, VisibilityChange,
};
use rusqlite::{params, Connection, OptionalExtension};

/// Most operations committed in one transaction.
const MAX_BATCH: usize = 1024;

/// Each entry moves the queue schema from version `index` to `index + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: queues and messages.
    "CREATE TABLE queues (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        name         TEXT NOT NULL UNIQUE,
        created_ms   INTEGER NOT NULL,
        modified_ms  INTEGER NOT NULL,
        attributes   TEXT NOT NULL,
        tags         TEXT NOT NULL
     );
     CREATE TABLE messages (
        seq               INTEGER PRIMARY KEY AUTOINCREMENT,
        queue_id          INTEGER NOT NULL,
        message_id        TEXT NOT NULL,
        body              TEXT NOT NULL,
        attributes        BLOB,
        md5_body          TEXT NOT NULL,
        md5_attributes    TEXT,
        sender_id         TEXT NOT NULL,
        sent_ms           INTEGER NOT NULL,
        visible_at        INTEGER NOT NULL,
        receive_count     INTEGER NOT NULL DEFAULT 0,
        first_receive_ms  INTEGER,
        receipt           TEXT
     );
     CREATE INDEX messages_visible ON messages (queue_id, visible_at, seq);",
    // 2: the `AWSTraceHeader` system attribute.
    "ALTER TABLE messages ADD COLUMN trace_header TEXT",
];

type Reply = Box<dyn FnOnce(Result<(), String>) + Send>;
/// An operation: runs against the connection inside the batch transaction (or, given
/// `None`, does not run at all) and says whether it succeeded (else its savepoint is rolled
/// back); its reply is called after the commit.
type Job = Box<dyn FnOnce(Option<&Connection>) -> (bool, Reply) + Send>;

/// The SQLite-backed [`QueueStore`].
#[derive(Debug, Clone)]
pub struct SqliteQueueStore {
    jobs: mpsc::Sender<Job>,
}

impl SqliteQueueStore {
    /// Opens (creating and migrating if needed) the queue database at `path` and starts its
    /// writer thread, which ends when the last handle is dropped.
    pub fn open(path: &Path) -> Result<Self, QueueStoreError> {
        let conn = Connection::open(path).map_err(backend)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(backend)?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(backend)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(backend)?;
        migrate(&conn).map_err(backend)?;
        let (jobs, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("queue-writer".into())
            .spawn(move || writer(conn, rx))
            .map_err(backend)?;
        Ok(Self { jobs })
    }

    /// Queues `f` for the writer and waits for the commit of its batch.
    async fn run<T, F>(&self, f: F) -> Result<T, QueueStoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, QueueStoreError> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let result = match conn {
                Some(conn) => f(conn),
                None => Err(QueueStoreError::Backend("not run".into())),
            };
            let ok = result.is_ok();
            let reply: Reply = Box::new(move |commit| {
                let answer = match commit {
                    Ok(()) => result,
                    Err(e) => Err(QueueStoreError::Backend(e)),
                };
                let _ = tx.send(answer);
            });
            (ok, reply)
        });
        self.jobs
            .send(job)
            .map_err(|_| QueueStoreError::Backend("queue writer thread is gone".into()))?;
        rx.await.map_err(|_| QueueStoreError::Backend("queue writer dropped a reply".into()))?
    }
}

fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let current: usize = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    for (idx, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {sql}; PRAGMA user_version = {}; COMMIT;",
            idx + 1
        ))?;
    }
    Ok(())
}

/// The writer thread: batches, commits, answers.
fn writer(conn: Connection, rx: mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            let msg = format!("beginning a queue transaction: {e}");
            tracing::error!(error = %msg, "queue store");
            for job in jobs {
                let (_, reply) = job(None);
                reply(Err(msg.clone()));
            }
            continue;
        }
        let mut replies = Vec::with_capacity(jobs.len());
        for job in jobs {
            let savepoint = conn.execute_batch("SAVEPOINT op");
            let (ok, reply) = job(Some(&conn));
            if savepoint.is_ok() {
                let end = if ok { "RELEASE op" } else { "ROLLBACK TO op; RELEASE op" };
                if let Err(e) = conn.execute_batch(end) {
                    tracing::error!(error = %e, "queue store savepoint");
                }
            }
            replies.push(reply);
        }
        let commit = conn.execute_batch("COMMIT").map_err(|e| {
            let _ = conn.execute_batch("ROLLBACK");
            tracing::error!(error = %e, "queue store commit failed");
            format!("committing a queue transaction: {e}")
        });
        for reply in replies {
            reply(commit.clone());
        }
    }
}

fn backend(e: impl std::fmt::Display) -> QueueStoreError {
    QueueStoreError::Backend(e.to_string())
}

fn queue_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(QueueRecord, String, String)> {
    Ok((
        QueueRecord {
            id: row.get(0)?,
            name: row.get(1)?,
            created_ms: row.get(2)?,
            modified_ms: row.get(3)?,
            attributes: BTreeMap::new(),
            tags: BTreeMap::new(),
        },
        row.get(4)?,
        row.get(5)?,
    ))
}

fn decode_queue(
    (mut record, attributes, tags): (QueueRecord, String, String),
) -> Result<QueueRecord, QueueStoreError> {
    record.attributes = serde_json::from_str(&attributes).map_err(backend)?;
    record.tags = serde_json::from_str(&tags).map_err(backend)?;
    Ok(record)
}

const QUEUE_COLUMNS: &str = "id, name, created_ms, modified_ms, attributes, tags";

fn queue_by_id(conn: &Connection, id: QueueId) -> Result<QueueRecord, QueueStoreError> {
    let row = conn
        .prepare_cached(&format!("SELECT {QUEUE_COLUMNS} FROM queues WHERE id = ?1"))
        .map_err(backend)?
        .query_row(params![id], queue_from_row)
        .optional()
        .map_err(backend)?;
    decode_queue(row.ok_or(QueueStoreError::QueueNotFound)?)
}

fn queue_exists(conn: &Connection, id: QueueId) -> Result<(), QueueStoreError> {
    let found = conn
        .prepare_cached("SELECT 1 FROM queues WHERE id = ?1")
        .map_err(backend)?
        .exists(params![id])
        .map_err(backend)?;
    if found {
        Ok(())
    } else {
        Err(QueueStoreError::QueueNotFound)
    }
}

/// Message attributes as one blob: for each attribute, length-prefixed (u32 big-endian)
/// name, data type and value, the value preceded by a kind byte (1 string, 2 binary).
fn encode_attributes(attributes: &BTreeMap<String, MessageAttributeValue>) -> Option<Vec<u8>> {
    if attributes.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    let put = |bytes: &[u8], out: &mut Vec<u8>| {
        out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        out.extend_from_slice(bytes);
    };
    for (name, value) in attributes {
        put(name.as_bytes(), &mut out);
        put(value.data_type.as_bytes(), &mut out);
        match (&value.string_value, &value.binary_value) {
            (_, Some(b)) => {
                out.push(2);
                put(b, &mut out);
            }
            (s, None) => {
                out.push(1);
                put(s.as_deref().unwrap_or("").as_bytes(), &mut out);
            }
        }
    }
    Some(out)
}

fn decode_attributes(
    blob: Option<Vec<u8>>,
) -> Result<BTreeMap<String, MessageAttributeValue>, QueueStoreError> {
    let mut out = BTreeMap::new();
    let Some(blob) = blob else { return Ok(out) };
    let corrupt = || QueueStoreError::Backend("corrupt message attributes".into());
    let mut rest = blob.as_slice();
    let take = |n: usize, rest: &mut &[u8]| -> Result<Vec<u8>, QueueStoreError> {
        if rest.len() < n {
            return Err(corrupt());
        }
        let (head, tail) = rest.split_at(n);
        *rest = tail;
        Ok(head.to_vec())
    };
    fn len(bytes: Vec<u8>) -> usize {
        u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize
    }
    let text = |b: Vec<u8>| String::from_utf8(b).map_err(|_| corrupt());
    while !rest.is_empty() {
        let n = len(take(4, &mut rest)?);
        let name = text(take(n, &mut rest)?)?;
        let n = len(take(4, &mut rest)?);
        let data_type = text(take(n, &mut rest)?)?;
        let kind = take(1, &mut rest)?[0];
        let n = len(take(4, &mut rest)?);
        let value = take(n, &mut rest)?;
        let attr = if kind == 2 {
            MessageAttributeValue::binary(data_type, value)
        } else {
            MessageAttributeValue::string(data_type, text(value)?)
        };
        out.insert(name, attr);
    }
    Ok(out)
}

/// One candidate row of a receive.
struct Candidate {
    seq: i64,
    message: NewMessage,
    attributes: Option<Vec<u8>>,
    receive_count: u32,
    first_receive_ms: Option<i64>,
}

fn receive_tx(conn: &Connection, req: &ReceiveRequest) -> Result<Received, QueueStoreError> {
    queue_exists(conn, req.queue)?;
    let mut out = Received::default();
    let mut seen: HashSet<i64> = HashSet::new();
    let cutoff = req.now_ms - req.retention_ms;
    loop {
        let want = req.max.saturating_sub(out.messages.len());
        if want == 0 {
            break;
        }
        let limit = (want + seen.len()) as i64;
        let candidates: Vec<Candidate> = conn
            .prepare_cached(
                "SELECT seq, message_id, body, attributes, md5_body, md5_attributes, sender_id,
                        sent_ms, visible_at, receive_count, first_receive_ms, trace_header
                   FROM messages WHERE queue_id = ?1 AND visible_at <= ?2
                  ORDER BY visible_at, seq LIMIT ?3",
            )
            .map_err(backend)?
            .query_map(params![req.queue, req.now_ms, limit], |row| {
                Ok(Candidate {
                    seq: row.get(0)?,
                    message: NewMessage {
                        message_id: row.get(1)?,
                        body: row.get(2)?,
                        attributes: BTreeMap::new(),
                        md5_of_body: row.get(4)?,
                        md5_of_attributes: row.get(5)?,
                        sender_id: row.get(6)?,
                        trace_header: row.get(11)?,
                        sent_ms: row.get(7)?,
                        visible_at_ms: row.get(8)?,
                    },
                    attributes: row.get(3)?,
                    receive_count: row.get(9)?,
                    first_receive_ms: row.get(10)?,
                })
            })
            .map_err(backend)?
            .collect::<Result<_, _>>()
            .map_err(backend)?;
        let fresh: Vec<Candidate> =
            candidates.into_iter().filter(|c| !seen.contains(&c.seq)).collect();
        if fresh.is_empty() {
            break;
        }
        for c in fresh {
            seen.insert(c.seq);
            if c.message.sent_ms <= cutoff {
                conn.prepare_cached("DELETE FROM messages WHERE seq = ?1")
                    .map_err(backend)?
                    .execute(params![c.seq])
                    .map_err(backend)?;
                continue;
            }
            if let Some(rule) = req.redrive {
                if c.receive_count >= rule.max_receive_count
                    && queue_exists(conn, rule.dead_letter_queue).is_ok()
                {
                    conn.prepare_cached(
                        "UPDATE messages SET queue_id = ?2, visible_at = ?3, receipt = NULL WHERE seq = ?1",
                    )
                    .map_err(backend)?
                    .execute(params![c.seq, rule.dead_letter_queue, req.now_ms])
                    .map_err(backend)?;
                    out.moved_to_dead_letter += 1;
                    continue;
                }
            }
            if out.messages.len() >= req.max {
                continue;
            }
            let token = uuid::Uuid::new_v4().simple().to_string();
            let first = c.first_receive_ms.unwrap_or(req.now_ms);
            conn.prepare_cached(
                "UPDATE messages SET receive_count = receive_count + 1, first_receive_ms = ?2,
                        visible_at = ?3, receipt = ?4 WHERE seq = ?1",
            )
            .map_err(backend)?
            .execute(params![c.seq, first, req.now_ms + req.visibility_ms, token])
            .map_err(backend)?;
            let mut message = c.message;
            message.attributes = decode_attributes(c.attributes)?;
            out.messages.push(StoredMessage {
                seq: c.seq,
                message,
                receive_count: c.receive_count + 1,
                first_receive_ms: Some(first),
                receipt_token: token,
            });
        }
    }
    Ok(out)
}

#[async_trait::async_trait]
impl QueueStore for SqliteQueueStore {
    async fn create_queue(
        &self,
        name: &str,
        attributes: &BTreeMap<String, String>,
        tags: &BTreeMap<String, String>,
        now_ms: i64,
    ) -> Result<(QueueRecord, bool), QueueStoreError> {
        let name = name.to_owned();
        let attributes_json = serde_json::to_string(attributes).map_err(backend)?;
        let tags_json = serde_json::to_string(tags).map_err(backend)?;
        self.run(move |conn| {
            let existing = conn
                .prepare_cached(&format!("SELECT {QUEUE_COLUMNS} FROM queues WHERE name = ?1"))
                .map_err(backend)?
                .query_row(params![name], queue_from_row)
                .optional()
                .map_err(backend)?;
            if let Some(row) = existing {
                return Ok((decode_queue(row)?, false));
            }
            conn.prepare_cached(
                "INSERT INTO queues (name, created_ms, modified_ms, attributes, tags)
                 VALUES (?1, ?2, ?2, ?3, ?4)",
            )
            .map_err(backend)?
            .execute(params![name, now_ms, attributes_json, tags_json])
            .map_err(backend)?;
            Ok((queue_by_id(conn, conn.last_insert_rowid())?, true))
        })
        .await
    }

    async fn list_queues(&self) -> Result<Vec<QueueRecord>, QueueStoreError> {
        self.run(|conn| {
            let rows: Vec<_> = conn
                .prepare_cached(&format!("SELECT {QUEUE_COLUMNS} FROM queues ORDER BY name"))
                .map_err(backend)?
                .query_map([], queue_from_row)
                .map_err(backend)?
                .collect::<Result<_, _>>()
                .map_err(backend)?;
            rows.into_iter().map(decode_queue).collect()
        })
        .await
    }

    async fn update_queue(
        &self,
        queue: QueueId,
        attributes: &BTreeMap<String, String>,
        tags: &BTreeMap<String, String>,
        now_ms: i64,
    ) -> Result<QueueRecord, QueueStoreError> {
        let attributes_json = serde_json::to_string(attributes).map_err(backend)?;
        let tags_json = serde_json::to_string(tags).map_err(backend)?;
        self.run(move |conn| {
            let n = conn
                .prepare_cached(
                    "UPDATE queues SET attributes = ?2, tags = ?3, modified_ms = ?4 WHERE id = ?1",
                )
                .map_err(backend)?
                .execute(params![queue, attributes_json, tags_json, now_ms])
                .map_err(backend)?;
            if n == 0 {
                return Err(QueueStoreError::QueueNotFound);
            }
            queue_by_id(conn, queue)
        })
        .await
    }

    async fn delete_queue(&self, queue: QueueId) -> Result<(), QueueStoreError> {
        self.run(move |conn| {
            let n = conn
                .execute("DELETE FROM queues WHERE id = ?1", params![queue])
                .map_err(backend)?;
            if n == 0 {
                return Err(QueueStoreError::QueueNotFound);
            }
            conn.execute("DELETE FROM messages WHERE queue_id = ?1", params![queue])
                .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn purge_queue(&self, queue: QueueId) -> Result<(), QueueStoreError> {
        self.run(move |conn| {
            queue_exists(conn, queue)?;
            conn.execute("DELETE FROM messages WHERE queue_id = ?1", params![queue])
                .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn put_messages(
        &self,
        messages: Vec<(QueueId, NewMessage)>,
    ) -> Result<Vec<i64>, QueueStoreError> {
        self.run(move |conn| {
            let mut seqs = Vec::with_capacity(messages.len());
            let mut checked: Option<QueueId> = None;
            for (queue, m) in messages {
                if checked != Some(queue) {
                    queue_exists(conn, queue)?;
                    checked = Some(queue);
                }
                conn.prepare_cached(
                    "INSERT INTO messages (queue_id, message_id, body, attributes, md5_body,
                        md5_attributes, sender_id, sent_ms, visible_at, trace_header)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )
                .map_err(backend)?
                .execute(params![
                    queue,
                    m.message_id,
                    m.body,
                    encode_attributes(&m.attributes),
                    m.md5_of_body,
                    m.md5_of_attributes,
                    m.sender_id,
                    m.sent_ms,
                    m.visible_at_ms,
                    m.trace_header
                ])
                .map_err(backend)?;
                seqs.push(conn.last_insert_rowid());
            }
            Ok(seqs)
        })
        .await
    }

    async fn receive(&self, request: ReceiveRequest) -> Result<Received, QueueStoreError> {
        self.run(move |conn| receive_tx(conn, &request)).await
    }

    async fn delete_message(
        &self,
        queue: QueueId,
        seq: i64,
        token: &str,
    ) -> Result<bool, QueueStoreError> {
        let token = token.to_owned();
        self.run(move |conn| {
            queue_exists(conn, queue)?;
            let n = conn
                .prepare_cached(
                    "DELETE FROM messages WHERE seq = ?1 AND queue_id = ?2 AND receipt = ?3",
                )
                .map_err(backend)?
                .execute(params![seq, queue, token])
                .map_err(backend)?;
            Ok(n == 1)
        })
        .await
    }

    async fn change_visibility(
        &self,
        queue: QueueId,
        seq: i64,
        token: &str,
        now_ms: i64,
        visible_at_ms: i64,
    ) -> Result<VisibilityChange, QueueStoreError> {
        let token = token.to_owned();
        self.run(move |conn| {
            queue_exists(conn, queue)?;
            let row: Option<(Option<String>, i64)> = conn
                .prepare_cached(
                    "SELECT receipt, visible_at FROM messages WHERE seq = ?1 AND queue_id = ?2",
                )
                .map_err(backend)?
                .query_row(params![seq, queue], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
                .map_err(backend)?;
            match row {
                Some((Some(receipt), visible_at)) if receipt == token => {
                    if visible_at <= now_ms {
                        return Ok(VisibilityChange::NotInFlight);
                    }
                    conn.prepare_cached("UPDATE messages SET visible_at = ?2 WHERE seq = ?1")
                        .map_err(backend)?
                        .execute(params![seq, visible_at_ms])
                        .map_err(backend)?;
                    Ok(VisibilityChange::Changed)
                }
                _ => Ok(VisibilityChange::Unknown),
            }
        })
        .await
    }

    async fn counts(
        &self,
        queue: QueueId,
        now_ms: i64,
        retention_ms: i64,
    ) -> Result<QueueCounts, QueueStoreError> {
        self.run(move |conn| {
            queue_exists(conn, queue)?;
            let (visible, in_flight, delayed): (Option<i64>, Option<i64>, Option<i64>) = conn
                .prepare_cached(
                    "SELECT SUM(visible_at <= ?2),
                            SUM(visible_at > ?2 AND receive_count > 0),
                            SUM(visible_at > ?2 AND receive_count = 0)
                       FROM messages WHERE queue_id = ?1 AND sent_ms > ?3",
                )
                .map_err(backend)?
                .query_row(params![queue, now_ms, now_ms - retention_ms], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .map_err(backend)?;
            let n = |v: Option<i64>| v.unwrap_or(0).max(0) as u64;
            Ok(QueueCounts { visible: n(visible), in_flight: n(in_flight), delayed: n(delayed) })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alonzo_store::queue::RedriveRule;

    fn message(body: &str, sent_ms: i64) -> NewMessage {
        let mut attributes = BTreeMap::new();
        attributes.insert("s".to_owned(), MessageAttributeValue::string("String", "v"));
        attributes
            .insert("b".to_owned(), MessageAttributeValue::binary("Binary.x", vec![0, 1, 255]));
        NewMessage {
            message_id: format!("id-{body}"),
            body: body.to_owned(),
            attributes,
            md5_of_body: "m".into(),
            md5_of_attributes: Some("a".into()),
            sender_id: "000000000000".into(),
            trace_header: None,
            sent_ms,
            visible_at_ms: sent_ms,
        }
    }

    fn receive(queue: QueueId, now_ms: i64, max: usize) -> ReceiveRequest {
        ReceiveRequest {
            queue,
            now_ms,
            max,
            visibility_ms: 30_000,
            retention_ms: 1_000_000,
            redrive: None,
        }
    }

    #[tokio::test]
    async fn messages_round_trip_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("queues.db");
        let store = SqliteQueueStore::open(&path).unwrap();
        let (q, created) =
            store.create_queue("q", &BTreeMap::new(), &BTreeMap::new(), 1000).await.unwrap();
        assert!(created);
        let (again, created) =
            store.create_queue("q", &BTreeMap::new(), &BTreeMap::new(), 2000).await.unwrap();
        assert!(!created);
        assert_eq!(again.id, q.id);
        store
            .put_messages(vec![(q.id, message("one", 1000)), (q.id, message("two", 1001))])
            .await
            .unwrap();
        drop(store);

        let store = SqliteQueueStore::open(&path).unwrap();
        let got = store.receive(receive(q.id, 2000, 10)).await.unwrap();
        assert_eq!(got.messages.len(), 2);
        assert_eq!(got.messages[0].message, message("one", 1000));
        assert_eq!(got.messages[0].receive_count, 1);
        let counts = store.counts(q.id, 2000, 1_000_000).await.unwrap();
        assert_eq!(counts, QueueCounts { visible: 0, in_flight: 2, delayed: 0 });

        // A stale token does not delete; the current one does.
        let first = &got.messages[0];
        assert!(!store.delete_message(q.id, first.seq, "stale").await.unwrap());
        assert!(store.delete_message(q.id, first.seq, &first.receipt_token).await.unwrap());
        assert!(!store.delete_message(q.id, first.seq, &first.receipt_token).await.unwrap());

        // Visibility expiry redelivers with a new token and a higher count.
        let second = &got.messages[1];
        let again = store.receive(receive(q.id, 40_000, 10)).await.unwrap();
        assert_eq!(again.messages.len(), 1);
        assert_eq!(again.messages[0].receive_count, 2);
        assert_ne!(again.messages[0].receipt_token, second.receipt_token);
        assert_eq!(
            store
                .change_visibility(q.id, second.seq, &second.receipt_token, 40_000, 0)
                .await
                .unwrap(),
            VisibilityChange::Unknown
        );
    }

    #[tokio::test]
    async fn redrive_retention_and_missing_queues() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteQueueStore::open(&dir.path().join("queues.db")).unwrap();
        let none = BTreeMap::new();
        let (q, _) = store.create_queue("src", &none, &none, 0).await.unwrap();
        let (dlq, _) = store.create_queue("dlq", &none, &none, 0).await.unwrap();
        store.put_messages(vec![(q.id, message("a", 0))]).await.unwrap();
        let rule = Some(RedriveRule { dead_letter_queue: dlq.id, max_receive_count: 2 });
        for (i, now) in [(1, 10), (2, 40_020)] {
            let got = store
                .receive(ReceiveRequest { redrive: rule, ..receive(q.id, now, 1) })
                .await
                .unwrap();
            assert_eq!(got.messages[0].receive_count, i);
        }
        let got = store
            .receive(ReceiveRequest { redrive: rule, ..receive(q.id, 80_030, 1) })
            .await
            .unwrap();
        assert!(got.messages.is_empty());
        assert_eq!(got.moved_to_dead_letter, 1);
        let moved = store.receive(receive(dlq.id, 80_040, 10)).await.unwrap();
        assert_eq!(moved.messages[0].message.body, "a");

        store.put_messages(vec![(q.id, message("old", 0))]).await.unwrap();
        let got = store
            .receive(ReceiveRequest { retention_ms: 60_000, ..receive(q.id, 100_000, 10) })
            .await
            .unwrap();
        assert!(got.messages.is_empty(), "a message past retention was delivered");

        store.delete_queue(q.id).await.unwrap();
        assert!(matches!(
            store.put_messages(vec![(q.id, message("x", 0))]).await,
            Err(QueueStoreError::QueueNotFound)
        ));
        assert!(matches!(
            store.receive(receive(q.id, 0, 1)).await,
            Err(QueueStoreError::QueueNotFound)
        ));
    }

    #[tokio::test]
    async fn concurrent_puts_share_commits() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteQueueStore::open(&dir.path().join("queues.db")).unwrap();
        let none = BTreeMap::new();
        let (q, _) = store.create_queue("q", &none, &none, 0).await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..200 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store.put_messages(vec![(q.id, message(&i.to_string(), 0))]).await.unwrap()[0]
            }));
        }
        let mut seqs = HashSet::new();
        for t in tasks {
            assert!(seqs.insert(t.await.unwrap()));
        }
        assert_eq!(store.counts(q.id, 1, 1_000_000).await.unwrap().visible, 200);
    }
}
