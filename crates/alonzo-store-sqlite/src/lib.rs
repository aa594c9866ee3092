//! The embedded metadata store: SQLite in WAL mode with `synchronous=FULL`, so that every
//! committed transaction survives a `kill -9` or a power cut.
//!
//! All SQL of the project lives here. A record's queryable fields (revision, state, code
//! hash) are columns; the rest of the record is a JSON document owned by this crate. Blocking
//! SQLite calls run on tokio's blocking pool behind one connection mutex: SQLite serialises
//! writers anyway, and metadata calls are short.

mod access;
mod group_commit;
mod queues;
mod schema;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use alonzo_model::{
    AliasRecord, Architecture, AsyncEvent, FunctionRecord, FunctionSetting, FunctionState,
    InvocationRecord, LastUpdateStatus, LayerVersionRecord, ProvisionedInterval, SettingKind,
    LATEST,
};
use alonzo_store::{AccountUsage, MetaStore, StoreError};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

pub use queues::SqliteQueueStore;

/// Cached `get_setting` answers, with a generation that every invalidation bumps so that a
/// read racing a change never caches the old value.
#[derive(Debug, Default)]
struct SettingsCache {
    generation: u64,
    entries: std::collections::HashMap<(String, &'static str, String), Option<FunctionSetting>>,
}

/// Cached `get_version` answers (the record every invocation looks up), with the same
/// generation rule as [`SettingsCache`]; every method that writes `function_versions`
/// invalidates the function's entries.
#[derive(Debug, Default)]
struct RecordCache {
    generation: u64,
    entries: std::collections::HashMap<(String, String), FunctionRecord>,
}

/// Records kept at most; the cache is emptied when it would grow beyond.
const RECORD_CACHE_MAX: usize = 4096;

impl SqliteStore {
    /// Forgets cached records of `function`.
    fn invalidate_records(&self, function: &str) {
        if let Ok(mut cache) = self.record_cache.lock() {
            cache.generation += 1;
            cache.entries.retain(|(f, _), _| f != function);
        }
    }

    /// Forgets cached settings of `function` (all of them when `qualifier` is `None`).
    fn invalidate_settings(&self, function: &str, qualifier: Option<&str>) {
        if let Ok(mut cache) = self.settings_cache.lock() {
            cache.generation += 1;
            cache.entries.retain(|(f, _, q), _| f != function || qualifier.is_some_and(|x| x != q));
        }
    }
}

/// Read-only connections kept open beside the writer.
const READERS: usize = 4;

/// The SQLite-backed [`MetaStore`].
#[derive(Debug, Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    /// Read-only connections: in WAL mode readers never wait for the writer, so lookups on
    /// the invoke path do not queue behind a commit's fsync.
    readers: Arc<Vec<Mutex<Connection>>>,
    /// Settings read on every asynchronous event (event invoke config, reserved
    /// concurrency), cached; this store is its database's only writer, and every method that
    /// changes settings invalidates them.
    settings_cache: Arc<Mutex<SettingsCache>>,
    /// Function records read on every invocation, cached the same way.
    record_cache: Arc<Mutex<RecordCache>>,
    /// Shares fsyncs between concurrent queue writes.
    group: group_commit::GroupCommit,
}

impl SqliteStore {
    /// Opens (creating and migrating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path).map_err(backend)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(backend)?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(backend)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(backend)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(backend)?;
        schema::migrate(&conn).map_err(backend)?;
        let conn = Arc::new(Mutex::new(conn));
        let group = group_commit::GroupCommit::start(Arc::clone(&conn));
        let readers = (0..READERS)
            .map(|_| {
                let reader = Connection::open(path).map_err(backend)?;
                reader.pragma_update(None, "query_only", "ON").map_err(backend)?;
                reader.pragma_update(None, "foreign_keys", "ON").map_err(backend)?;
                reader.busy_timeout(std::time::Duration::from_secs(5)).map_err(backend)?;
                Ok(Mutex::new(reader))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Self {
            conn,
            readers: Arc::new(readers),
            settings_cache: Arc::new(Mutex::new(SettingsCache::default())),
            record_cache: Arc::new(Mutex::new(RecordCache::default())),
            group,
        })
    }

    /// Runs the read-only `f` with a free reader connection on the blocking pool.
    async fn with_read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let readers = Arc::clone(&self.readers);
        tokio::task::spawn_blocking(move || {
            let guard = readers
                .iter()
                .find_map(|r| r.try_lock().ok())
                .map_or_else(|| readers[0].lock(), Ok)
                .map_err(|_| StoreError::Backend("connection mutex poisoned".into()))?;
            f(&guard)
        })
        .await
        .map_err(backend)?
    }

    /// Runs `f` with the connection on the blocking pool.
    async fn with_conn<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut guard =
                conn.lock().map_err(|_| StoreError::Backend("connection mutex poisoned".into()))?;
            f(&mut guard)
        })
        .await
        .map_err(backend)?
    }
}

#[async_trait::async_trait]
impl MetaStore for SqliteStore {
    async fn create_function(
        &self,
        record: &FunctionRecord,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), StoreError> {
        let record = record.clone();
        let function_key = record.name.clone();
        let tags = serde_json::to_string(tags).map_err(backend)?;
        let result = self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(backend)?;
            let inserted = tx
                .execute(
                    "INSERT INTO functions (name, created_at, tags) VALUES (?1, ?2, ?3) ON CONFLICT(name) DO NOTHING",
                    params![record.name, record.last_modified.to_rfc3339(), tags],
                )
                .map_err(backend)?;
            if inserted == 0 {
                return Err(StoreError::AlreadyExists);
            }
            insert_version(&tx, &record)?;
            tx.commit().map_err(backend)
        })
        .await;
        self.invalidate_records(&function_key);
        result
    }

    async fn get_version(&self, name: &str, version: &str) -> Result<FunctionRecord, StoreError> {
        let key = (name.to_owned(), version.to_owned());
        let generation = match self.record_cache.lock() {
            Ok(cache) => {
                if let Some(hit) = cache.entries.get(&key) {
                    return Ok(hit.clone());
                }
                cache.generation
            }
            Err(_) => u64::MAX,
        };
        let (name, version) = key.clone();
        let record: FunctionRecord = self
            .with_read(move |conn| {
                let doc: Option<String> = conn
                    .query_row(
                        "SELECT record FROM function_versions WHERE name = ?1 AND version = ?2",
                        params![name, version],
                        |row| row.get(0),
                    )
                    .optional()
                    .map_err(backend)?;
                decode(&doc.ok_or(StoreError::NotFound)?)
            })
            .await?;
        if let Ok(mut cache) = self.record_cache.lock() {
            if cache.generation == generation {
                if cache.entries.len() >= RECORD_CACHE_MAX {
                    cache.entries.clear();
                }
                cache.entries.insert(key, record.clone());
            }
        }
        Ok(record)
    }

    async fn update_version(
        &self,
        record: &FunctionRecord,
        expected_revision: &str,
    ) -> Result<(), StoreError> {
        let record = record.clone();
        let function_key = record.name.clone();
        let expected = expected_revision.to_owned();
        let result = self
            .with_conn(move |conn| {
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(backend)?;
                expect_revision(
                    &tx,
                    "SELECT revision_id FROM function_versions WHERE name = ?1 AND version = ?2",
                    params![record.name, record.version],
                    &expected,
                )?;
                tx.execute(
                    "DELETE FROM function_versions WHERE name = ?1 AND version = ?2",
                    params![record.name, record.version],
                )
                .map_err(backend)?;
                insert_version(&tx, &record)?;
                tx.commit().map_err(backend)
            })
            .await;
        self.invalidate_records(&function_key);
        result
    }

    async fn publish_version(
        &self,
        record: &FunctionRecord,
        latest_revision: &str,
    ) -> Result<u64, StoreError> {
        let mut record = record.clone();
        let function_key = record.name.clone();
        let latest_revision = latest_revision.to_owned();
        let result = self
            .with_conn(move |conn| {
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(backend)?;
                expect_revision(
                    &tx,
                    "SELECT revision_id FROM function_versions WHERE name = ?1 AND version = ?2",
                    params![record.name, LATEST],
                    &latest_revision,
                )?;
                let next: i64 = tx
                    .query_row(
                        "SELECT next_version FROM functions WHERE name = ?1",
                        params![record.name],
                        |row| row.get(0),
                    )
                    .map_err(backend)?;
                record.version = next.to_string();
                insert_version(&tx, &record)?;
                tx.execute(
                    "UPDATE functions SET next_version = ?2 WHERE name = ?1",
                    params![record.name, next + 1],
                )
                .map_err(backend)?;
                tx.commit().map_err(backend)?;
                Ok(u64::try_from(next).unwrap_or(0))
            })
            .await;
        self.invalidate_records(&function_key);
        result
    }

    async fn delete_version(&self, name: &str, version: &str) -> Result<(), StoreError> {
        self.invalidate_settings(name, Some(version));
        let function_key = name.to_owned();
        let qualifier_key = version.to_owned();
        let (name, version) = (name.to_owned(), version.to_owned());
        let result = self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(backend)?;
            let routing_path = format!("$.routing.\"{version}\"");
            let aliased: i64 = tx
                .query_row(
                    "SELECT COUNT(*) FROM aliases WHERE function = ?1
                       AND (json_extract(record, '$.function_version') = ?2 OR json_type(record, ?3) IS NOT NULL)",
                    params![name, version, routing_path],
                    |row| row.get(0),
                )
                .map_err(backend)?;
            if aliased > 0 {
                return Err(StoreError::InUse);
            }
            change_one(&tx, "DELETE FROM function_versions WHERE name = ?1 AND version = ?2", params![name, version])?;
            tx.execute("DELETE FROM function_settings WHERE function = ?1 AND qualifier = ?2", params![name, version])
                .map_err(backend)?;
            tx.commit().map_err(backend)
        })
        .await;
        self.invalidate_settings(&function_key, Some(&qualifier_key));
        self.invalidate_records(&function_key);
        result
    }

    async fn create_alias(&self, alias: &AliasRecord) -> Result<(), StoreError> {
        let doc = serde_json::to_string(alias).map_err(backend)?;
        let (function, name, rev) =
            (alias.function.clone(), alias.name.clone(), alias.revision_id.clone());
        let versions = alias_versions(alias);
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(backend)?;
            let exists: bool = tx
                .query_row("SELECT COUNT(*) FROM functions WHERE name = ?1", params![function], |row| row.get::<_, i64>(0))
                .map_err(backend)?
                > 0;
            if !exists {
                return Err(StoreError::NotFound);
            }
            expect_versions(&tx, &function, &versions)?;
            let inserted = tx
                .execute(
                    "INSERT INTO aliases (function, name, revision_id, record) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                    params![function, name, rev, doc],
                )
                .map_err(backend)?;
            if inserted == 0 {
                return Err(StoreError::AlreadyExists);
            }
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn get_alias(&self, function: &str, name: &str) -> Result<AliasRecord, StoreError> {
        let (function, name) = (function.to_owned(), name.to_owned());
        self.with_read(move |conn| {
            let doc: Option<String> = conn
                .query_row(
                    "SELECT record FROM aliases WHERE function = ?1 AND name = ?2",
                    params![function, name],
                    |row| row.get(0),
                )
                .optional()
                .map_err(backend)?;
            serde_json::from_str(&doc.ok_or(StoreError::NotFound)?).map_err(backend)
        })
        .await
    }

    async fn update_alias(
        &self,
        alias: &AliasRecord,
        expected_revision: &str,
    ) -> Result<(), StoreError> {
        let doc = serde_json::to_string(alias).map_err(backend)?;
        let (function, name, rev) =
            (alias.function.clone(), alias.name.clone(), alias.revision_id.clone());
        let expected = expected_revision.to_owned();
        let versions = alias_versions(alias);
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(backend)?;
            expect_revision(&tx, "SELECT revision_id FROM aliases WHERE function = ?1 AND name = ?2", params![function, name], &expected)?;
            expect_versions(&tx, &function, &versions)?;
            tx.execute(
                "UPDATE aliases SET revision_id = ?3, record = ?4 WHERE function = ?1 AND name = ?2",
                params![function, name, rev, doc],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn delete_alias(&self, function: &str, name: &str) -> Result<(), StoreError> {
        self.invalidate_settings(function, Some(name));
        let function_key = function.to_owned();
        let qualifier_key = name.to_owned();
        let (function, name) = (function.to_owned(), name.to_owned());
        let result = self
            .with_conn(move |conn| {
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(backend)?;
                change_one(
                    &tx,
                    "DELETE FROM aliases WHERE function = ?1 AND name = ?2",
                    params![function, name],
                )?;
                tx.execute(
                    "DELETE FROM function_settings WHERE function = ?1 AND qualifier = ?2",
                    params![function, name],
                )
                .map_err(backend)?;
                tx.commit().map_err(backend)
            })
            .await;
        self.invalidate_settings(&function_key, Some(&qualifier_key));
        result
    }

    async fn list_aliases(&self, function: &str) -> Result<Vec<AliasRecord>, StoreError> {
        let function = function.to_owned();
        self.with_read(move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT record FROM aliases WHERE function = ?1 ORDER BY name")
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![function], |row| row.get::<_, String>(0))
                .map_err(backend)?;
            rows.map(|doc| serde_json::from_str(&doc.map_err(backend)?).map_err(backend)).collect()
        })
        .await
    }

    async fn publish_layer_version(&self, record: &LayerVersionRecord) -> Result<u64, StoreError> {
        let mut record = record.clone();
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(backend)?;
            let next: i64 = tx
                .query_row("SELECT next_version FROM layer_names WHERE name = ?1", params![record.name], |row| row.get(0))
                .optional()
                .map_err(backend)?
                .unwrap_or(1);
            record.version = u64::try_from(next).unwrap_or(1);
            let doc = serde_json::to_string(&record).map_err(backend)?;
            tx.execute(
                "INSERT INTO layer_versions (name, version, code_sha256, record) VALUES (?1, ?2, ?3, ?4)",
                params![record.name, next, record.code.sha256_hex, doc],
            )
            .map_err(backend)?;
            tx.execute(
                "INSERT INTO layer_names (name, next_version) VALUES (?1, ?2)
                 ON CONFLICT(name) DO UPDATE SET next_version = excluded.next_version",
                params![record.name, next + 1],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(record.version)
        })
        .await
    }

    async fn get_layer_version(
        &self,
        name: &str,
        version: u64,
    ) -> Result<LayerVersionRecord, StoreError> {
        let name = name.to_owned();
        let version = i64::try_from(version).unwrap_or(-1);
        self.with_read(move |conn| {
            let doc: Option<String> = conn
                .query_row(
                    "SELECT record FROM layer_versions WHERE name = ?1 AND version = ?2",
                    params![name, version],
                    |row| row.get(0),
                )
                .optional()
                .map_err(backend)?;
            serde_json::from_str(&doc.ok_or(StoreError::NotFound)?).map_err(backend)
        })
        .await
    }

    async fn list_layer_versions(&self, name: &str) -> Result<Vec<LayerVersionRecord>, StoreError> {
        let name = name.to_owned();
        self.with_conn(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT record FROM layer_versions WHERE name = ?1 ORDER BY version DESC",
                )
                .map_err(backend)?;
            let rows =
                stmt.query_map(params![name], |row| row.get::<_, String>(0)).map_err(backend)?;
            rows.map(|doc| serde_json::from_str(&doc.map_err(backend)?).map_err(backend)).collect()
        })
        .await
    }

    async fn list_all_layer_versions(&self) -> Result<Vec<LayerVersionRecord>, StoreError> {
        self.with_conn(|conn| {
            let mut stmt = conn
                .prepare_cached("SELECT record FROM layer_versions ORDER BY name, version DESC")
                .map_err(backend)?;
            let rows = stmt.query_map([], |row| row.get::<_, String>(0)).map_err(backend)?;
            rows.map(|doc| serde_json::from_str(&doc.map_err(backend)?).map_err(backend)).collect()
        })
        .await
    }

    async fn delete_layer_version(&self, name: &str, version: u64) -> Result<(), StoreError> {
        let name = name.to_owned();
        let version = i64::try_from(version).unwrap_or(-1);
        self.with_conn(move |conn| {
            change_one(
                conn,
                "DELETE FROM layer_versions WHERE name = ?1 AND version = ?2",
                params![name, version],
            )
        })
        .await
    }

    async fn delete_function(&self, name: &str) -> Result<(), StoreError> {
        self.invalidate_settings(name, None);
        let function_key = name.to_owned();
        let name = name.to_owned();
        let result = self
            .with_conn(move |conn| {
                let deleted = conn
                    .execute("DELETE FROM functions WHERE name = ?1", params![name])
                    .map_err(backend)?;
                if deleted == 0 {
                    return Err(StoreError::NotFound);
                }
                Ok(())
            })
            .await;
        self.invalidate_settings(&function_key, None);
        self.invalidate_records(&function_key);
        result
    }

    async fn list_functions(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<FunctionRecord>, StoreError> {
        let after = after.unwrap_or("").to_owned();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with_read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT record FROM function_versions WHERE version = ?1 AND name > ?2 ORDER BY name LIMIT ?3",
                )
                .map_err(backend)?;
            let rows = stmt.query_map(params![LATEST, after, limit], |row| row.get::<_, String>(0)).map_err(backend)?;
            rows.map(|doc| decode(&doc.map_err(backend)?)).collect()
        })
        .await
    }

    async fn list_versions(&self, name: &str) -> Result<Vec<FunctionRecord>, StoreError> {
        let name = name.to_owned();
        self.with_read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT record FROM function_versions WHERE name = ?1 ORDER BY version_num",
                )
                .map_err(backend)?;
            let rows =
                stmt.query_map(params![name], |row| row.get::<_, String>(0)).map_err(backend)?;
            let out: Vec<FunctionRecord> =
                rows.map(|doc| decode(&doc.map_err(backend)?)).collect::<Result<_, _>>()?;
            if out.is_empty() {
                return Err(StoreError::NotFound);
            }
            Ok(out)
        })
        .await
    }

    async fn get_tags(&self, name: &str) -> Result<BTreeMap<String, String>, StoreError> {
        let name = name.to_owned();
        self.with_read(move |conn| {
            let doc: Option<String> = conn
                .query_row("SELECT tags FROM functions WHERE name = ?1", params![name], |row| {
                    row.get(0)
                })
                .optional()
                .map_err(backend)?;
            serde_json::from_str(&doc.ok_or(StoreError::NotFound)?).map_err(backend)
        })
        .await
    }

    async fn put_tags(
        &self,
        name: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), StoreError> {
        let name = name.to_owned();
        let doc = serde_json::to_string(tags).map_err(backend)?;
        self.with_conn(move |conn| {
            let updated = conn
                .execute("UPDATE functions SET tags = ?2 WHERE name = ?1", params![name, doc])
                .map_err(backend)?;
            if updated == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
        })
        .await
    }

    async fn account_usage(&self) -> Result<AccountUsage, StoreError> {
        self.with_conn(|conn| {
            let function_count: i64 = conn
                .query_row("SELECT COUNT(*) FROM functions", [], |row| row.get(0))
                .map_err(backend)?;
            let total_code_size: i64 = conn
                .query_row(
                    "SELECT (SELECT COALESCE(SUM(code_size), 0) FROM function_versions)
                          + (SELECT COALESCE(SUM(json_extract(record, '$.code.size')), 0) FROM layer_versions)",
                    [],
                    |row| row.get(0),
                )
                .map_err(backend)?;
            Ok(AccountUsage {
                function_count: u64::try_from(function_count).unwrap_or(0),
                total_code_size: u64::try_from(total_code_size).unwrap_or(0),
            })
        })
        .await
    }

    async fn list_unsettled(&self) -> Result<Vec<FunctionRecord>, StoreError> {
        self.with_conn(|conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT record FROM function_versions WHERE state = ?1 OR last_update_status = ?2 ORDER BY name",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![FunctionState::Pending.as_str(), LastUpdateStatus::InProgress.as_str()], |row| {
                    row.get::<_, String>(0)
                })
                .map_err(backend)?;
            rows.map(|doc| decode(&doc.map_err(backend)?)).collect()
        })
        .await
    }

    async fn referenced_code(&self) -> Result<Vec<String>, StoreError> {
        self.with_conn(|conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT code_sha256 FROM function_versions
                     UNION SELECT code_sha256 FROM layer_versions
                     UNION SELECT json_extract(layer.value, '$.sha256_hex')
                           FROM function_versions, json_each(function_versions.record, '$.config.layer_code') AS layer",
                )
                .map_err(backend)?;
            let rows = stmt.query_map([], |row| row.get::<_, Option<String>>(0)).map_err(backend)?;
            rows.filter_map(|r| r.map_err(backend).transpose()).collect()
        })
        .await
    }

    async fn enqueue_event(&self, event: &AsyncEvent, due_ms: i64) -> Result<(), StoreError> {
        let doc = serde_json::to_string(event).map_err(backend)?;
        let id = event.id.clone();
        self.group
            .write(Box::new(move |tx| {
                tx.execute(
                    "INSERT INTO async_events (id, due_ms, event) VALUES (?1, ?2, ?3) ON CONFLICT(id) DO NOTHING",
                    params![id, due_ms, doc],
                )
                .map_err(backend)?;
                Ok(())
            }))
            .await
    }

    async fn lease_events(
        &self,
        now_ms: i64,
        lease_until_ms: i64,
        limit: usize,
    ) -> Result<Vec<AsyncEvent>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with_conn(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(backend)?;
            let docs: Vec<(String, String)> = {
                let mut stmt = tx
                    .prepare_cached(
                        "SELECT id, event FROM async_events WHERE due_ms <= ?1 AND leased_until <= ?1 ORDER BY due_ms LIMIT ?2",
                    )
                    .map_err(backend)?;
                let rows = stmt.query_map(params![now_ms, limit], |row| Ok((row.get(0)?, row.get(1)?))).map_err(backend)?;
                rows.collect::<Result<_, _>>().map_err(backend)?
            };
            for (id, _) in &docs {
                tx.execute("UPDATE async_events SET leased_until = ?2 WHERE id = ?1", params![id, lease_until_ms])
                    .map_err(backend)?;
            }
            tx.commit().map_err(backend)?;
            docs.iter().map(|(_, doc)| serde_json::from_str(doc).map_err(backend)).collect()
        })
        .await
    }

    async fn complete_event(&self, id: &str) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.group
            .write(Box::new(move |tx| {
                tx.execute("DELETE FROM async_events WHERE id = ?1", params![id])
                    .map_err(backend)?;
                Ok(())
            }))
            .await
    }

    async fn retry_event(&self, event: &AsyncEvent, due_ms: i64) -> Result<(), StoreError> {
        let id = event.id.clone();
        let doc = serde_json::to_string(event).map_err(backend)?;
        self.with_conn(move |conn| {
            change_one(
                conn,
                "UPDATE async_events SET due_ms = ?2, leased_until = 0, event = ?3 WHERE id = ?1",
                params![id, due_ms, doc],
            )
        })
        .await
    }

    async fn put_setting(
        &self,
        function: &str,
        qualifier: &str,
        setting: &FunctionSetting,
    ) -> Result<(), StoreError> {
        self.invalidate_settings(function, Some(qualifier));
        let function_key = function.to_owned();
        let qualifier_key = qualifier.to_owned();
        let (function, qualifier) = (function.to_owned(), qualifier.to_owned());
        let kind = setting.kind().as_str();
        let doc = serde_json::to_string(setting).map_err(backend)?;
        let result = self.with_conn(move |conn| {
            let tx =
                conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(backend)?;
            let exists: i64 = tx
                .query_row("SELECT COUNT(*) FROM functions WHERE name = ?1", params![function], |row| {
                    row.get(0)
                })
                .map_err(backend)?;
            if exists == 0 {
                return Err(StoreError::NotFound);
            }
            tx.execute(
                "INSERT INTO function_settings (function, kind, qualifier, record) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(function, kind, qualifier) DO UPDATE SET record = excluded.record",
                params![function, kind, qualifier, doc],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)
        })
        .await;
        self.invalidate_settings(&function_key, Some(&qualifier_key));
        result
    }

    async fn get_setting(
        &self,
        function: &str,
        kind: SettingKind,
        qualifier: &str,
    ) -> Result<Option<FunctionSetting>, StoreError> {
        let key = (function.to_owned(), kind.as_str(), qualifier.to_owned());
        let generation = match self.settings_cache.lock() {
            Ok(cache) => {
                if let Some(hit) = cache.entries.get(&key) {
                    return Ok(hit.clone());
                }
                cache.generation
            }
            Err(_) => u64::MAX,
        };
        let (function, qualifier) = (function.to_owned(), qualifier.to_owned());
        let found = self
            .with_read(move |conn| {
                let doc: Option<String> = conn
                    .query_row(
                        "SELECT record FROM function_settings WHERE function = ?1 AND kind = ?2 AND qualifier = ?3",
                        params![function, kind.as_str(), qualifier],
                        |row| row.get(0),
                    )
                    .optional()
                    .map_err(backend)?;
                doc.map(|d| serde_json::from_str::<FunctionSetting>(&d).map_err(backend)).transpose()
            })
            .await?;
        if let Ok(mut cache) = self.settings_cache.lock() {
            if cache.generation == generation {
                cache.entries.insert(key, found.clone());
            }
        }
        Ok(found)
    }

    async fn delete_setting(
        &self,
        function: &str,
        kind: SettingKind,
        qualifier: &str,
    ) -> Result<bool, StoreError> {
        self.invalidate_settings(function, Some(qualifier));
        let function_key = function.to_owned();
        let qualifier_key = qualifier.to_owned();
        let (function, qualifier) = (function.to_owned(), qualifier.to_owned());
        let result = self.with_conn(move |conn| {
            let n = conn
                .execute(
                    "DELETE FROM function_settings WHERE function = ?1 AND kind = ?2 AND qualifier = ?3",
                    params![function, kind.as_str(), qualifier],
                )
                .map_err(backend)?;
            Ok(n > 0)
        })
        .await;
        self.invalidate_settings(&function_key, Some(&qualifier_key));
        result
    }

    async fn list_settings(
        &self,
        function: Option<&str>,
        kind: SettingKind,
    ) -> Result<Vec<(String, String, FunctionSetting)>, StoreError> {
        let function = function.map(str::to_owned);
        self.with_read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT function, qualifier, record FROM function_settings
                     WHERE kind = ?1 AND (?2 IS NULL OR function = ?2) ORDER BY function, qualifier",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![kind.as_str(), function], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get::<_, String>(2)?))
                })
                .map_err(backend)?;
            rows.map(|row| {
                let (f, q, doc) = row.map_err(backend)?;
                Ok((f, q, serde_json::from_str(&doc).map_err(backend)?))
            })
            .collect()
        })
        .await
    }

    async fn release_leases(&self) -> Result<u64, StoreError> {
        self.with_conn(|conn| {
            let n = conn
                .execute("UPDATE async_events SET leased_until = 0 WHERE leased_until > 0", [])
                .map_err(backend)?;
            Ok(n as u64)
        })
        .await
    }

    async fn record_invocations(&self, records: &[InvocationRecord]) -> Result<(), StoreError> {
        let rows: Vec<(String, String, i64, String)> = records
            .iter()
            .map(|r| {
                Ok((
                    r.request_id.clone(),
                    r.function.clone(),
                    r.started_ms,
                    serde_json::to_string(r).map_err(backend)?,
                ))
            })
            .collect::<Result<_, StoreError>>()?;
        self.with_conn(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            {
                // Prepared once per connection, not parsed again for every record.
                let mut insert = tx
                    .prepare_cached(
                        "INSERT INTO invocations (request_id, function, started_ms, record) VALUES (?1, ?2, ?3, ?4)",
                    )
                    .map_err(backend)?;
                for (id, function, started, doc) in &rows {
                    insert.execute(params![id, function, started, doc]).map_err(backend)?;
                }
            }
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn invocations(
        &self,
        function: Option<&str>,
    ) -> Result<Vec<InvocationRecord>, StoreError> {
        let function = function.map(str::to_owned);
        self.with_read(move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT record FROM invocations WHERE ?1 IS NULL OR function = ?1 ORDER BY started_ms")
                .map_err(backend)?;
            let rows = stmt.query_map(params![function], |row| row.get::<_, String>(0)).map_err(backend)?;
            rows.map(|doc| serde_json::from_str(&doc.map_err(backend)?).map_err(backend)).collect()
        })
        .await
    }

    async fn set_provisioned_intervals(
        &self,
        function: &str,
        desired: &[ProvisionedInterval],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let function = function.to_owned();
        let desired = desired.to_vec();
        self.with_conn(move |conn| {
            let tx =
                conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(backend)?;
            let open: Vec<(i64, ProvisionedInterval)> = {
                let mut stmt = tx
                    .prepare_cached(&format!(
                        "SELECT id, {INTERVAL_COLUMNS} FROM provisioned_intervals
                         WHERE function = ?1 AND end_ms IS NULL"
                    ))
                    .map_err(backend)?;
                let rows = stmt
                    .query_map(params![function], |row| Ok((row.get(0)?, interval_row(row, 1)?)))
                    .map_err(backend)?;
                rows.collect::<Result<_, _>>().map_err(backend)?
            };
            for (id, period) in &open {
                if !desired.iter().any(|d| d.same_configuration(period)) {
                    tx.execute(
                        "UPDATE provisioned_intervals SET end_ms = ?1 WHERE id = ?2",
                        params![now_ms.max(period.start_ms), id],
                    )
                    .map_err(backend)?;
                }
            }
            for d in &desired {
                if d.function != function || open.iter().any(|(_, p)| p.same_configuration(d)) {
                    continue;
                }
                tx.execute(
                    &format!(
                        "INSERT INTO provisioned_intervals ({INTERVAL_COLUMNS})
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULL)"
                    ),
                    params![
                        d.function,
                        d.qualifier,
                        d.version,
                        d.count,
                        d.memory_mb,
                        d.ephemeral_mb,
                        d.architecture.as_str(),
                        now_ms
                    ],
                )
                .map_err(backend)?;
            }
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn provisioned_intervals(
        &self,
        function: Option<&str>,
    ) -> Result<Vec<ProvisionedInterval>, StoreError> {
        let function = function.map(str::to_owned);
        self.with_read(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {INTERVAL_COLUMNS} FROM provisioned_intervals
                     WHERE ?1 IS NULL OR function = ?1 ORDER BY start_ms, id"
                ))
                .map_err(backend)?;
            let rows =
                stmt.query_map(params![function], |row| interval_row(row, 0)).map_err(backend)?;
            rows.collect::<Result<_, _>>().map_err(backend)
        })
        .await
    }
}

/// The columns of a provisioned-concurrency period, in [`interval_row`]'s order.
const INTERVAL_COLUMNS: &str =
    "function, qualifier, version, count, memory_mb, ephemeral_mb, architecture, start_ms, end_ms";

/// Reads a period from [`INTERVAL_COLUMNS`] starting at column `at`.
fn interval_row(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<ProvisionedInterval> {
    let architecture: String = row.get(at + 6)?;
    Ok(ProvisionedInterval {
        function: row.get(at)?,
        qualifier: row.get(at + 1)?,
        version: row.get(at + 2)?,
        count: row.get(at + 3)?,
        memory_mb: row.get(at + 4)?,
        ephemeral_mb: row.get(at + 5)?,
        architecture: Architecture::parse(&architecture).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                at + 6,
                rusqlite::types::Type::Text,
                format!("unknown architecture {architecture:?}").into(),
            )
        })?,
        start_ms: row.get(at + 7)?,
        end_ms: row.get(at + 8)?,
    })
}

/// Runs a statement that must change exactly one row; none means the row does not exist.
fn change_one(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<(), StoreError> {
    match conn.execute(sql, params).map_err(backend)? {
        0 => Err(StoreError::NotFound),
        _ => Ok(()),
    }
}

/// The versions an alias refers to.
fn alias_versions(alias: &AliasRecord) -> Vec<String> {
    std::iter::once(alias.function_version.clone()).chain(alias.routing.keys().cloned()).collect()
}

/// Checks, inside a transaction, that every version exists (an alias never points at a
/// deleted version, even when the deletion races with the alias change).
fn expect_versions(
    tx: &rusqlite::Transaction<'_>,
    function: &str,
    versions: &[String],
) -> Result<(), StoreError> {
    for version in versions {
        let n: i64 = tx
            .query_row(
                "SELECT COUNT(*) FROM function_versions WHERE name = ?1 AND version = ?2",
                params![function, version],
                |row| row.get(0),
            )
            .map_err(backend)?;
        if n == 0 {
            return Err(StoreError::Dangling(version.clone()));
        }
    }
    Ok(())
}

/// Checks, inside a transaction, that the revision `sql` selects is `expected`.
fn expect_revision(
    tx: &rusqlite::Transaction<'_>,
    sql: &str,
    params: impl rusqlite::Params,
    expected: &str,
) -> Result<(), StoreError> {
    let current: Option<String> =
        tx.query_row(sql, params, |row| row.get(0)).optional().map_err(backend)?;
    match current {
        None => Err(StoreError::NotFound),
        Some(rev) if rev != expected => Err(StoreError::RevisionMismatch),
        Some(_) => Ok(()),
    }
}

fn insert_version(
    tx: &rusqlite::Transaction<'_>,
    record: &FunctionRecord,
) -> Result<(), StoreError> {
    let doc = serde_json::to_string(record).map_err(backend)?;
    let version_num: i64 =
        if record.version == LATEST { 0 } else { record.version.parse().map_err(backend)? };
    tx.execute(
        "INSERT INTO function_versions (name, version, version_num, revision_id, state, last_update_status, code_sha256, code_size, record)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            record.name,
            record.version,
            version_num,
            record.revision_id,
            record.state.as_str(),
            record.last_update_status.as_str(),
            record.code.sha256_hex,
            i64::try_from(record.code.size).unwrap_or(i64::MAX),
            doc
        ],
    )
    .map_err(backend)?;
    Ok(())
}

fn decode(doc: &str) -> Result<FunctionRecord, StoreError> {
    serde_json::from_str(doc).map_err(backend)
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

#[cfg(test)]
mod tests;
